"""The Python asyncio middle hop of the e2e chains: unmodified, one of
  aiohttp         aiohttp server, one aiohttp ClientSession (keep-alive
                  pool of 4 connections: requests wait for one)
  aiohttp-new     aiohttp server, a new connection per call
  aiohttp-thread  aiohttp server, the call made by requests in
                  asyncio.to_thread
  aiohttp-exec    the same in loop.run_in_executor (no context is copied:
                  nothing proves which request the call serves)
  aiohttp-bg      aiohttp server: answers at once, the call made 20 ms
                  later by a background task (while the connection's next
                  request is served)
  aiohttp-ticker  aiohttp, and a task started with the app GETs the URL
                  argv[3] every 10 ms (work of no request)
  fastapi         FastAPI async endpoint on uvicorn (h11, asyncio loop),
                  aiohttp client on a keep-alive pool of 4
  fastapi-sync    FastAPI def endpoint (uvicorn runs it in anyio's thread
                  pool), requests client
  asyncio         the standard library only (asyncio.start_server, a new
                  asyncio.open_connection per call): for any CPython
/users/<id> answers; /call?url=<next> calls the next hop.
Usage: python3 pychain.py <port> <mode> [url]   (prints "listening <port>")"""
import asyncio
import socket
import sys

mode = sys.argv[2] if len(sys.argv) > 2 else "aiohttp"


def listener(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit it: uvicorn writes a response's head and body
    # apart, which Nagle would hold for a delayed ACK (40 ms) on keep-alive.
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.bind(("127.0.0.1", port))
    s.listen(512)
    print("listening %d" % s.getsockname()[1], flush=True)
    return s


def blocking_get(url):
    import requests
    r = requests.get(url, timeout=20)
    return r.status_code


def run_aiohttp(sock):
    from aiohttp import ClientSession, TCPConnector, web

    async def session(app):
        new = mode == "aiohttp-new"
        app["s"] = ClientSession(connector=TCPConnector(force_close=True) if new else TCPConnector(limit=4))
        ticker = asyncio.create_task(tick(sys.argv[3])) if mode == "aiohttp-ticker" else None
        yield
        if ticker:
            ticker.cancel()
        await app["s"].close()

    async def tick(url):
        async with ClientSession() as s:
            while True:
                async with s.get(url) as r:
                    await r.read()
                await asyncio.sleep(0.01)

    async def get(url):
        async with app["s"].get(url) as r:
            await r.read()
            return r.status

    background = set()

    async def later(url):
        await asyncio.sleep(0.02)
        await get(url)

    async def call(req):
        url = req.query["url"]
        if mode == "aiohttp-thread":
            code = await asyncio.to_thread(blocking_get, url)
        elif mode == "aiohttp-exec":
            code = await asyncio.get_running_loop().run_in_executor(None, blocking_get, url)
        elif mode == "aiohttp-bg":
            task = asyncio.create_task(later(url))
            background.add(task)
            task.add_done_callback(background.discard)
            code = 200
        else:
            code = await get(url)
        return web.Response(text="downstream said %d\n" % code)

    async def user(req):
        return web.Response(text="user %s\n" % req.match_info["id"])

    app = web.Application()
    app.cleanup_ctx.append(session)
    app.add_routes([web.get("/call", call), web.get("/users/{id}", user)])
    web.run_app(app, sock=sock, print=None, access_log=None)


def run_fastapi(sock):
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    app = FastAPI()
    state = {}

    if mode == "fastapi-sync":
        @app.get("/call", response_class=PlainTextResponse)
        def call(url: str):
            return "downstream said %d\n" % blocking_get(url)
    else:
        @app.get("/call", response_class=PlainTextResponse)
        async def call(url: str):
            from aiohttp import ClientSession, TCPConnector
            if "s" not in state:
                state["s"] = ClientSession(connector=TCPConnector(limit=4))
            async with state["s"].get(url) as r:
                await r.read()
                return "downstream said %d\n" % r.status

    @app.get("/users/{uid}", response_class=PlainTextResponse)
    async def user(uid: str):
        return "user %s\n" % uid

    config = uvicorn.Config(app, http="h11", loop="asyncio", log_level="warning", access_log=False,
                            backlog=512)
    uvicorn.Server(config).run(sockets=[sock])


async def raw_get(url):
    hostport, _, path = url[len("http://"):].partition("/")
    host, _, port = hostport.partition(":")
    r, w = await asyncio.open_connection(host, int(port))
    w.write(("GET /%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path, hostport)).encode())
    await w.drain()
    head = (await r.read()).split(b"\r\n", 1)[0]
    w.close()
    return int(head.split()[1])


def run_asyncio(sock):
    from urllib.parse import parse_qs, urlparse

    async def serve(r, w):
        try:
            while True:
                head = await r.readuntil(b"\r\n\r\n")
                target = head.split(b" ", 2)[1].decode()
                u = urlparse(target)
                if u.path == "/call":
                    body = "downstream said %d\n" % await raw_get(parse_qs(u.query)["url"][0])
                else:
                    body = "user %s\n" % u.path.rsplit("/", 1)[-1]
                w.write(("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(body), body)).encode())
                await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()

    async def main():
        srv = await asyncio.start_server(serve, sock=sock)
        async with srv:
            await srv.serve_forever()

    asyncio.run(main())


sock = listener(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
if mode == "asyncio":
    run_asyncio(sock)
elif mode.startswith("aiohttp"):
    run_aiohttp(sock)
elif mode.startswith("fastapi"):
    run_fastapi(sock)
else:
    sys.exit("unknown mode " + mode)
