#!/usr/bin/env python3
"""The seed's RPC client, ported to Python 3 with the standard library only.

It speaks the wire protocol of PROTOCOL.md: a 4-byte length prefix packed with
struct.pack("I", n) (native order: little-endian on x86-64 and ARM), then that
many bytes of UTF-8 JSON, both ways.

    python3 examples/seed_client.py                    # ten pings to localhost:8080
    python3 examples/seed_client.py 127.0.0.1:9000     # ... to another address
    python3 examples/seed_client.py --method fib --params 100
    python3 examples/seed_client.py --method set --params '{"key": "a", "value": [1, 2]}'

    python3 examples/seed_client.py --tls --cacert ca.crt localhost:8443
    REACTOR_RPC_PASSWORD=... python3 examples/seed_client.py --method stats

Without --method it does what the seed's client did: send
{"in": "ping", "params": "ireader N"} for N = 0..9 and print each response as
"OUT RESULT" (the seed also slept a second between calls; --interval does that).
With --method it makes one call and prints the result as JSON; an error
response is printed as "error: CODE: MESSAGE" on stderr, with exit status 1.

--tls connects over TLS (Python's ssl module), verifying the server against
--cacert. A password (from --password-file, the REACTOR_RPC_PASSWORD
environment variable, or --password, in that order of preference) makes the
client call `auth` first, as --user (default: the user `default`). A server
that cannot be reached, a failed handshake or a refused login prints one line
on stderr and exits 2.
"""

import argparse
import json
import os
import socket
import ssl
import struct
import sys
import time

# fib answers with exact integers of up to 20 899 digits. Python 3.11+ refuses
# to parse an int of more than 4300 digits unless told otherwise; the seed ran
# on Python 2, which had no such limit.
if hasattr(sys, "set_int_max_str_digits"):
    sys.set_int_max_str_digits(0)


def recv_exact(sock, n):
    """Reads exactly n bytes (recv may return fewer)."""
    chunks = []
    while n > 0:
        chunk = sock.recv(n)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def rpc(sock, in_, params):
    """Sends one request and returns the response's (out, result)."""
    request = json.dumps({"in": in_, "params": params}).encode("utf-8")
    sock.sendall(struct.pack("I", len(request)) + request)
    (length,) = struct.unpack("I", recv_exact(sock, 4))
    response = json.loads(recv_exact(sock, length).decode("utf-8"))
    return response["out"], response["result"]


def parse_addr(text):
    host, _, port = text.rpartition(":")
    host = host.strip("[]")  # [::1]:8080
    return (host or "localhost", int(port))


def read_password(args):
    """The password, if any: a file (one trailing newline is not part of it),
    the environment, or the command line, in that order."""
    if args.password_file:
        with open(args.password_file, "rb") as f:
            data = f.read()
        if data.endswith(b"\r\n"):
            data = data[:-2]
        elif data.endswith(b"\n"):
            data = data[:-1]
        return data.decode("utf-8")
    if os.environ.get("REACTOR_RPC_PASSWORD"):
        return os.environ["REACTOR_RPC_PASSWORD"]
    return args.password


def connect(args):
    """The connected (and, with --tls, wrapped) socket."""
    host, port = parse_addr(args.addr)
    sock = socket.create_connection((host, port), timeout=args.timeout)
    if not args.tls:
        return sock
    context = ssl.create_default_context(cafile=args.cacert)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if args.cert:
        context.load_cert_chain(args.cert, args.key)
    try:
        return context.wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise


class Refused(Exception):
    """The server answered auth with an error."""


def main():
    parser = argparse.ArgumentParser(description="The seed's RPC client, in Python 3.")
    parser.add_argument("addr", nargs="?", default="localhost:8080", help="HOST:PORT (default localhost:8080)")
    parser.add_argument("--method", help="call this method once instead of the ten pings")
    parser.add_argument("--params", default="null", help="params of --method, as JSON (default null)")
    parser.add_argument("--interval", type=float, default=0.0, help="seconds between the pings (the seed used 1)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the server (default 10)")
    parser.add_argument("--tls", action="store_true", help="connect over TLS (with --cacert)")
    parser.add_argument("--cacert", help="CA certificate(s), PEM, that signed the server's certificate")
    parser.add_argument("--cert", help="client certificate, PEM, for mutual TLS (with --key)")
    parser.add_argument("--key", help="the client certificate's private key, PEM")
    parser.add_argument("--user", help="log in as this user (default: the user 'default')")
    parser.add_argument("--password-file", help="log in with the password in this file")
    parser.add_argument(
        "--password",
        help="log in with this password. Visible to every user of this machine in `ps`: "
        "prefer --password-file or the REACTOR_RPC_PASSWORD environment variable",
    )
    args = parser.parse_args()
    if (args.cacert or args.cert) and not args.tls:
        parser.error("--cacert, --cert and --key need --tls")
    if args.tls and not args.cacert:
        parser.error("--tls needs --cacert")
    if bool(args.cert) != bool(args.key):
        parser.error("--cert and --key go together")

    try:
        password = read_password(args)
    except (OSError, UnicodeDecodeError) as e:
        print("seed_client: cannot read the password: %s" % e, file=sys.stderr)
        return 2
    try:
        sock = connect(args)
    except (OSError, ValueError) as e:  # refused, unreachable, DNS, TLS (ssl.SSLError is an OSError)
        print("seed_client: cannot connect to %s: %s" % (args.addr, e), file=sys.stderr)
        return 2
    try:
        if password is not None:
            params = {"password": password}
            if args.user:
                params["user"] = args.user
            out, result = rpc(sock, "auth", params)
            if out == "error":
                raise Refused("%s: %s" % (result["code"], result["message"]))
        if args.method is None:
            for i in range(10):
                out, result = rpc(sock, "ping", "ireader %d" % i)
                print(out, result, flush=True)
                if args.interval:
                    time.sleep(args.interval)
            return 0
        out, result = rpc(sock, args.method, json.loads(args.params))
        if out == "error":
            print("error: %s: %s" % (result["code"], result["message"]), file=sys.stderr)
            return 1
        print(json.dumps(result, ensure_ascii=False))
        return 0
    except Refused as e:
        print("seed_client: %s refused the login: %s" % (args.addr, e), file=sys.stderr)
        return 2
    except (OSError, ConnectionError, struct.error, ValueError) as e:
        print("seed_client: %s: %s" % (args.addr, e), file=sys.stderr)
        return 2
    finally:
        sock.close()


if __name__ == "__main__":
    sys.exit(main())
