"""Python grpcio server and client of the e2e tests: unmodified, no
generated code (generic handlers, raw-bytes messages).

  grpcpy.py serve            demo.Echo and grpc.health.v1.Health/Check; prints "listening <port>"
  grpcpy.py call ADDR        every demo.Echo method against a grpcpy server
  grpcpy.py callgo ADDR      grpc.health.v1.Health against a grpc-go server

Clients print one "<method> <status code name>" line per call.
"""
import sys
from concurrent import futures

import grpc

# The traceparent a test sends explicitly on demo.Echo/Unary (second call).
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

# HealthCheckResponse{status: SERVING}.
SERVING = b"\x08\x01"


def unary(request, context):
    return request[::-1]


def stream(request, context):
    for i in range(3):
        yield b"part %d of %s" % (i, request)


def fail(request, context):
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing: 100%")


def crash(request, context):
    raise RuntimeError("boom")


def health(request, context):
    return SERVING


def serve():
    handlers = {
        "demo.Echo": {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Stream": grpc.unary_stream_rpc_method_handler(stream),
            "Fail": grpc.unary_unary_rpc_method_handler(fail),
            "Crash": grpc.unary_unary_rpc_method_handler(crash),
        },
        "grpc.health.v1.Health": {"Check": grpc.unary_unary_rpc_method_handler(health)},
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    for service, methods in handlers.items():
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, methods),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print("listening %d" % port, flush=True)
    server.wait_for_termination()


def report(method, call):
    """Runs call(), prints the method and the status it ended with."""
    try:
        call()
        code = grpc.StatusCode.OK
    except grpc.RpcError as e:
        code = e.code()
    print(method, code.name, flush=True)


def call(addr):
    with grpc.insecure_channel(addr) as ch:
        u = ch.unary_unary("/demo.Echo/Unary")
        report("demo.Echo/Unary", lambda: u(b"hello"))
        report("demo.Echo/Unary", lambda: u(b"traced", metadata=(("traceparent", TRACEPARENT),)))
        s = ch.unary_stream("/demo.Echo/Stream")
        report("demo.Echo/Stream", lambda: list(s(b"req")))
        report("demo.Echo/Fail", lambda: ch.unary_unary("/demo.Echo/Fail")(b""))
        report("demo.Echo/Crash", lambda: ch.unary_unary("/demo.Echo/Crash")(b""))
        report("demo.Echo/Missing", lambda: ch.unary_unary("/demo.Echo/Missing")(b""))


def callgo(addr):
    with grpc.insecure_channel(addr) as ch:
        check = ch.unary_unary("/grpc.health.v1.Health/Check")
        report("grpc.health.v1.Health/Check", lambda: check(b""))
        # HealthCheckRequest{service: "nope"}: NOT_FOUND.
        report("grpc.health.v1.Health/Check", lambda: check(b"\x0a\x04nope"))
        # Server streaming: SERVING, then nothing until the deadline.
        watch = ch.unary_stream("/grpc.health.v1.Health/Watch")
        report("grpc.health.v1.Health/Watch", lambda: list(watch(b"", timeout=0.5)))


if __name__ == "__main__":
    {"serve": serve, "call": lambda: call(sys.argv[2]), "callgo": lambda: callgo(sys.argv[2])}[sys.argv[1]]()
