# koncli for initContainers and Job scripts (the shell is kept for `sh -c` steps).
#   docker build -f docker/koncli.Dockerfile -t logiciq/koncli .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --profile dist --locked --bin koncli

FROM debian:bookworm-slim
COPY --from=build /src/target/dist/koncli /usr/local/bin/koncli
USER 65532:65532
ENTRYPOINT []
CMD ["koncli", "--help"]
