#!/usr/bin/env python3
"""The simulated internet's servers, run inside the test's network namespace (never a real
address): HTTPS on 443 (answers with the SNI it saw), HTTP on 80 and 8080 (answers with the Host
header), a fake SSH banner on 22, a listener on 5432 and UDP echoes on 443 (QUIC stand-in) and
51820 (WireGuard stand-in), on every address given (IPv4 or IPv6). `--web-only` serves 443 and 80
only (a service on the host itself, for the rebinding tests). Long-lived connections for the
"cut after deny" tests: HTTPS `GET /echo` and port 22 echo what they receive until the peer
closes. No reverse-DNS look-ups anywhere (they would leave the machine)."""
import socket
import ssl
import sys
import threading

args = sys.argv[1:]
web_only = "--web-only" in args
args = [a for a in args if a != "--web-only"]
cert, key, *addrs = args


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


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


def echo(conn):
    """Echoes until the peer closes (or a minute of silence)."""
    conn.settimeout(60)
    while True:
        data = conn.recv(4096)
        if not data:
            return
        conn.sendall(data)


def serve_tcp(addr, port, handler):
    s = socket.socket(family(addr), socket.SOCK_STREAM)
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
    if line.startswith("GET /echo "):
        tls.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        echo(tls)
        return
    reply(tls, f"https ok addr={addr} sni={seen['sni']} host={host} request={line}\n")


def http(conn, addr):
    line, host = read_head(conn)
    reply(conn, f"http ok addr={addr} host={host} request={line}\n")


def banner(text, then_echo=False):
    def h(conn, addr):
        conn.sendall(text.encode())
        if then_echo:
            echo(conn)
    return h


def udp_echo(addr, port):
    s = socket.socket(family(addr), socket.SOCK_DGRAM)
    s.bind((addr, port))
    while True:
        data, peer = s.recvfrom(2048)
        s.sendto(b"echo:" + data, peer)


threads = []
for a in addrs:
    threads += [(serve_tcp, (a, 443, https)), (serve_tcp, (a, 80, http))]
    if not web_only:
        threads += [
            (serve_tcp, (a, 8080, http)),
            (serve_tcp, (a, 22, banner("SSH-2.0-simulated\r\n", then_echo=True))),
            (serve_tcp, (a, 5432, banner("postgres-simulated\n"))),
            (udp_echo, (a, 443)),
            (udp_echo, (a, 51820)),
        ]
# Bind everything before saying ready (a failed bind is fatal, not a silent gap).
listeners = []
for fn, fargs in threads:
    t = threading.Thread(target=fn, args=fargs, daemon=True)
    t.start()
    listeners.append(t)
threading.Event().wait(0.3)
if not all(t.is_alive() for t in listeners):
    sys.exit("a listener failed to start")
print("ready", flush=True)
threading.Event().wait()
