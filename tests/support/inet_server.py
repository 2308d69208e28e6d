#!/usr/bin/env python3
"""The simulated internet's servers, run inside the test's network namespace (never a real
address): HTTPS on 443 (answers with the SNI it saw), HTTP on 80 (answers with the Host header),
a fake SSH banner on 22, a listener on 5432 and a UDP echo on 443 (QUIC stand-in), on every
address given. No reverse-DNS look-ups anywhere (they would leave the machine)."""
import socket
import ssl
import sys
import threading

cert, key, *addrs = sys.argv[1:]


def reply(conn, body):
    data = body.encode()
    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data))


def read_head(conn):
    buf = b""
    while b"\r\n\r\n" not in buf and len(buf) < 65536:
        chunk = conn.recv(4096)
        if not chunk:
            break
        buf += chunk
    host = ""
    for line in buf.decode("latin-1").split("\r\n")[1:]:
        if line.lower().startswith("host:"):
            host = line.split(":", 1)[1].strip()
    return buf.split(b"\r\n", 1)[0].decode("latin-1"), host


def serve_tcp(addr, port, handler):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(64)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=guard, args=(handler, conn, addr), daemon=True).start()


def guard(handler, conn, addr):
    try:
        conn.settimeout(10)
        handler(conn, addr)
    except Exception:
        pass
    finally:
        try:
            conn.close()
        except Exception:
            pass


def https(conn, addr):
    seen = {"sni": ""}
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.sni_callback = lambda sock, name, c: seen.update(sni=name or "")
    tls = ctx.wrap_socket(conn, server_side=True)
    line, host = read_head(tls)
    reply(tls, f"https ok addr={addr} sni={seen['sni']} host={host} request={line}\n")


def http(conn, addr):
    line, host = read_head(conn)
    reply(conn, f"http ok addr={addr} host={host} request={line}\n")


def banner(text):
    def h(conn, addr):
        conn.sendall(text.encode())
    return h


def udp_echo(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))
    while True:
        data, peer = s.recvfrom(2048)
        s.sendto(b"echo:" + data, peer)


threads = []
for a in addrs:
    threads += [
        (serve_tcp, (a, 443, https)),
        (serve_tcp, (a, 80, http)),
        (serve_tcp, (a, 22, banner("SSH-2.0-simulated\r\n"))),
        (serve_tcp, (a, 5432, banner("postgres-simulated\n"))),
        (udp_echo, (a, 443)),
    ]
for fn, args in threads:
    threading.Thread(target=fn, args=args, daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
