#!/usr/bin/env python3
"""HTTP-level checks of matterlink-web (tests/e2e_web_http.sh starts it).

usage: web_http.py plain|tls PORT [CA_FILE]

The core behind the portal is away (its endpoint has nothing behind it): pages that need
it must answer 503; everything the web decides alone (routing, limits, parsing, headers,
cookies, pre-session CSRF) is checked for real, with http.client and raw sockets.
"""
import http.client
import re
import socket
import ssl
import sys

MODE, PORT = sys.argv[1], int(sys.argv[2])
CA_FILE = sys.argv[3] if len(sys.argv) > 3 else None
SECURE = MODE == "tls"
CSP = ("default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'")
FORM = "application/x-www-form-urlencoded"
failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
        print("FAIL: " + what, flush=True)


def context():
    ctx = ssl.create_default_context(cafile=CA_FILE)
    return ctx


def connect():
    if SECURE:
        return http.client.HTTPSConnection("127.0.0.1", PORT, timeout=10, context=context())
    return http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)


def request(method, path, body=None, headers=None, security=True):
    """One request on its own connection; checks the security headers of the answer."""
    connection = connect()
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    what = f"{method} {path} -> {response.status}"
    if security:
        check(response.getheader("Content-Security-Policy") == CSP, what + ": CSP")
        check(response.getheader("X-Content-Type-Options") == "nosniff", what + ": nosniff")
        check(response.getheader("Referrer-Policy") == "no-referrer", what + ": referrer")
        hsts = response.getheader("Strict-Transport-Security")
        check((hsts is not None) == SECURE, what + f": HSTS {hsts!r} over {MODE}")
        if response.getheader("Content-Type", "").startswith("text/html"):
            check(response.getheader("Cache-Control") == "no-store", what + ": no-store")
            text = data.decode("utf-8")
            check("<script" not in text and "style=" not in text and "<style" not in text,
                  what + ": no inline script or style")
    return response, data


def raw(payload):
    """Send bytes as they are; return the status code of the answer (0 when none)."""
    sock = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    if SECURE:
        sock = context().wrap_socket(sock, server_hostname="127.0.0.1")
    try:
        sock.sendall(payload)
    except OSError:
        pass  # the server may answer and close before reading everything
    answer = b""
    try:
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    except OSError:
        pass
    sock.close()
    match = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
    return int(match.group(1)) if match else 0


session_cookie = ("__Host-" if SECURE else "") + "ml_session"
form_cookie = ("__Host-" if SECURE else "") + "ml_form"

# The sign-in page: a form with labels, a pre-session token in a cookie and a hidden field.
response, data = request("GET", "/sign-in")
page = data.decode()
check(response.status == 200, "GET /sign-in is 200")
check('<label for="email">' in page and '<label for="password">' in page, "sign-in labels")
set_cookie = response.getheader("Set-Cookie") or ""
check(set_cookie.startswith(form_cookie + "="), f"form cookie name: {set_cookie}")
check("HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie and "Path=/" in set_cookie,
      "form cookie attributes")
check(("; Secure" in set_cookie) == SECURE, "Secure only over HTTPS")
token = re.search(r'name="form_token" value="([^"]+)"', page).group(1)
check(set_cookie.split(";")[0] == f"{form_cookie}={token}", "cookie and field hold one token")

# HEAD is GET without a body.
response, data = request("HEAD", "/sign-in")
check(response.status == 200 and data == b"", "HEAD /sign-in")

# The style sheet, compiled in.
response, data = request("GET", "/static/portal.css")
check(response.status == 200, "css 200")
check(response.getheader("Content-Type") == "text/css; charset=utf-8", "css type")
check(b"@media (max-width" in data and b":focus-visible" in data, "css content")

# Redirects.
response, _ = request("GET", "/")
check(response.status == 303 and response.getheader("Location") == "/sign-in", "/ to sign-in")
response, _ = request("GET", "/", headers={"Cookie": f"{session_cookie}=abcDEF123"})
check(response.status == 303 and response.getheader("Location") == "/invoices", "/ to invoices")
response, _ = request("GET", "/invoices")
check(response.status == 303 and response.getheader("Location") == "/sign-in",
      "/invoices without a session")

# Pages that need the core: 503 with a page that says so.
response, data = request("GET", "/invoices", headers={"Cookie": f"{session_cookie}=abcDEF123"})
check(response.status == 503 and b"cannot reach the payment service" in data, "invoices 503")
response, data = request("GET", "/set-password?token=abcDEF123")
check(response.status == 503, "set-password 503")
response, data = request("GET", "/set-password")
check(response.status == 410 and b"expired" in data, "set-password without a token: 410")
response, data = request("GET", "/confirm-email?token=abc%20def")
check(response.status == 410, "confirm-email with a malformed token: 410")

# Routing: unknown paths and wrong methods.
for path in ["/nope", "/sign-in/", "/%73ign-in", "/static/", "/static/portal.css/x"]:
    response, _ = request("GET", path)
    check(response.status == 404, f"GET {path} is 404")
for method, path, allow in [("POST", "/invoices", "GET, HEAD"), ("GET", "/sign-out", "POST"),
                            ("PUT", "/sign-in", "GET, HEAD, POST"),
                            ("DELETE", "/sign-in", "GET, HEAD, POST"),
                            ("POST", "/static/portal.css", "GET, HEAD")]:
    response, _ = request(method, path, body=b"" if method != "GET" else None,
                          headers={"Content-Type": FORM})
    check(response.status == 405 and response.getheader("Allow") == allow,
          f"{method} {path}: 405 with Allow {allow}")

# No state change on GET: credentials in a query are not a sign-in.
response, data = request("GET", "/sign-in?email=a%40b.example&password=secret1234")
check(response.status == 200 and b"<form" in data, "GET /sign-in with a query shows the form")
check(session_cookie not in (response.getheader("Set-Cookie") or ""), "no session on GET")

# Pre-session CSRF: the double-submitted token must be there and match.
good = {"Content-Type": FORM, "Cookie": f"{form_cookie}={token}"}
body = f"form_token={token}&email=a%40b.example&password=secret1234"
response, data = request("POST", "/sign-in", body=body, headers=good)
check(response.status == 503, f"valid double submit reaches the core (503), got {response.status}")
response, data = request("POST", "/sign-in", body="email=a%40b.example&password=x",
                         headers=good)
check(response.status == 403 and b"form expired" in data, "no form token: 403")
response, data = request("POST", "/sign-in", body=body, headers={"Content-Type": FORM})
check(response.status == 403, "no form cookie: 403")
forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
response, data = request("POST", "/sign-in", body=f"form_token={forged}&email=a&password=b",
                         headers={"Content-Type": FORM, "Cookie": f"{form_cookie}={forged}"})
check(response.status == 403, "a forged token (cookie = field, bad MAC): 403")
response, data = request("POST", "/forgot-password", body="email=a%40b.example",
                         headers={"Content-Type": FORM})
check(response.status == 403, "forgot without a form token: 403")
response, data = request("POST", "/set-password",
                         body=f"form_token={token}&token=abc&password=a&confirm=b", headers=good)
check(response.status == 400 and b"not the same" in data, "set-password mismatch: 400")

# Malformed bodies and queries: 400, nothing reaches the core (which would be 503).
for bad in ["email=%zz", "email=%4", "email=%C3%28", "email=%00x", "email=%C0%AF",
            "email=%ED%A0%80", "a=1&a=2", "em ail=x", "email=\u00e9"]:
    response, data = request("POST", "/sign-in", body=(f"form_token={token}&" + bad).encode(),
                             headers=good)
    check(response.status == 400, f"malformed body {bad!r}: 400, got {response.status}")
response, _ = request("POST", "/sign-in", body=f"form_token={token}&email=a\0b".encode(),
                      headers=good)
check(response.status == 400, "a raw NUL in the body: 400")
response, _ = request("GET", "/set-password?token=%zz")
check(response.status == 400, "malformed query: 400")
response, _ = request("GET", "/set-password?token=%FF")
check(response.status == 400, "invalid UTF-8 in the query: 400")
response, _ = request("POST", "/sign-in", body="email=x", headers={"Content-Type": "text/plain"})
check(response.status == 415, "not a form: 415")

# Oversize: a body over the cap (declared, and chunked), headers over the memory limit.
response, _ = request("POST", "/sign-in", body=b"a=" + b"x" * 20000, headers=good)
check(response.status == 413, f"oversize body: 413, got {response.status}")
chunk = b"x" * 8000
chunked = (b"POST /sign-in HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: " + FORM.encode() +
           b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
           (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 3 + b"0\r\n\r\n")
status = raw(chunked)
check(status == 413, f"oversize chunked body: 413, got {status}")
status = raw(b"GET /sign-in HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 40000 +
             b"\r\nConnection: close\r\n\r\n")
check(status in (413, 431), f"oversize header: 413 or 431, got {status}")
status = raw(b"GET /" + b"a" * 40000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
check(status in (413, 414, 431), f"oversize request line: refused, got {status}")
status = raw(b"GARBAGE\r\n\r\n")
check(status == 400 or status == 0, f"a malformed request line: 400 or closed, got {status}")

# The server still answers after all that.
response, _ = request("GET", "/sign-in")
check(response.status == 200, "still serving")

if failures:
    print(f"{len(failures)} check(s) failed", flush=True)
    sys.exit(1)
print(f"web_http {MODE}: all checks passed", flush=True)
