# konductor (operator and embedded server). Build from the repository root:
#   docker build -f docker/operator.Dockerfile -t konductor/operator .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --profile dist --locked --bin konductor

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/dist/konductor /usr/local/bin/konductor
ENTRYPOINT ["/usr/local/bin/konductor"]
CMD ["operator"]
