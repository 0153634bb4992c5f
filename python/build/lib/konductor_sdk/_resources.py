"""Konductor's resources as lightkube generic resources (``konductor.io/v1``)."""

from lightkube.generic_resource import create_namespaced_resource

GROUP = "konductor.io"
VERSION = "v1"

Barrier = create_namespaced_resource(GROUP, VERSION, "Barrier", "barriers")
Arrival = create_namespaced_resource(GROUP, VERSION, "Arrival", "arrivals")
Permit = create_namespaced_resource(GROUP, VERSION, "Permit", "permits")
Semaphore = create_namespaced_resource(GROUP, VERSION, "Semaphore", "semaphores")
Mutex = create_namespaced_resource(GROUP, VERSION, "Mutex", "mutexes")
RWMutex = create_namespaced_resource(GROUP, VERSION, "RWMutex", "rwmutexes")
RateLimit = create_namespaced_resource(GROUP, VERSION, "RateLimit", "ratelimits")
Once = create_namespaced_resource(GROUP, VERSION, "Once", "onces")
WaitGroup = create_namespaced_resource(GROUP, VERSION, "WaitGroup", "waitgroups")
WaitGroupMember = create_namespaced_resource(GROUP, VERSION, "WaitGroupMember", "waitgroupmembers")
Gate = create_namespaced_resource(GROUP, VERSION, "Gate", "gates")
