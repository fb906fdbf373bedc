#!/usr/bin/env python3
"""smtp_server: a real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message it accepts.

The mailer (core/mail/) is tested against it: the selftest starts it, sends through it
with libcurl, and reads what arrived. Each accepted message becomes two files in the directory
given on the command line, written whole before the server answers (so a reader never sees half
a message): NAME.eml holds the message as received (after the SMTP dot-unstuffing), NAME.json
the envelope and what Python's own e-mail parser makes of the message (decoded subject and
body, headers, defects), so the test checks our encoding against an independent parser.

It can misbehave on purpose, at the end of DATA, to the first N messages:
  --tempfail N     answer "451" (nothing kept)
  --drop N         close the connection instead of answering (nothing kept)
  --accept-drop N  keep the message, then close the connection without answering: the client
                   cannot know the message arrived (the at-least-once window, on purpose)
  --slow N         wait --delay-ms before keeping the message and answering "250"; a client
                   that leaves before gets nothing kept (aiosmtpd cancels the handler), as a
                   real server that had not committed the message yet
Each may be given as N:ADDRESS (and repeated) to count only the messages to that recipient,
so one server can play every scenario of a test, one recipient each. A message gets the
first rule that applies, in the order above. --reject ADDRESS (repeatable) answers "550" to
RCPT TO for that address.

With --tls-cert and --tls-key it offers STARTTLS and requires it; with --auth-user and
--auth-password-file it requires AUTH (PLAIN or LOGIN, only after STARTTLS).

It prints its port on standard output once it accepts connections (--port 0, the default,
takes a free one), and logs one line per message on standard error: never a password.
Debian's python3-aiosmtpd; run it with /usr/bin/python3, the interpreter that package serves.
"""

import argparse
import asyncio
import email
import email.policy
import hashlib
import hmac
import json
import os
import ssl
import sys
import time

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def log(text):
    sys.stderr.write("smtp_server: %s\n" % text)
    sys.stderr.flush()


class Handler:
    def __init__(self, options):
        self.options = options
        self.reject = {address.lower() for address in options.reject}
        # [action, address or None for any, messages left]
        self.rules = [[name, address, count]
                      for name in ("tempfail", "drop", "accept_drop", "slow")
                      for count, address in getattr(options, name)]
        self.sequence = 0

    def misbehaviour(self, envelope):
        recipients = {address.lower() for address in envelope.rcpt_tos}
        for rule in self.rules:
            if rule[2] > 0 and (rule[1] is None or rule[1] in recipients):
                rule[2] -= 1
                return rule[0]
        return None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject:
            log("550 RCPT TO <%s>" % address)
            return "550 5.1.1 <%s>: mailbox unavailable (test server)" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    def keep(self, session, envelope, action):
        """Write NAME.eml and NAME.json whole (temporary name, then rename)."""
        raw = envelope.original_content
        self.sequence += 1
        name = "%d-%d-%d" % (time.time_ns(), os.getpid(), self.sequence)
        lines = raw.split(b"\r\n")
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        try:
            body = parsed.get_content() if not parsed.is_multipart() else None
        except (LookupError, ValueError) as error:
            body, parsed.defects = None, parsed.defects + [error]
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "action": action,
            "tls": session.ssl is not None,
            "auth": session.auth_data.login.decode() if session.authenticated else None,
            "headers": {key.lower(): str(value) for key, value in parsed.items()},
            "header_count": {key.lower(): len(parsed.get_all(key)) for key in parsed.keys()},
            "body": body,
            "defects": [type(defect).__name__ for defect in parsed.defects],
            # Raw form checks: the longest line, and line ends other than CRLF.
            "max_line": max(len(line) for line in lines),
            "bare_lf": b"\n" in raw.replace(b"\r\n", b""),
            "bare_cr": b"\r" in raw.replace(b"\r\n", b""),
            "eight_bit": any(byte > 127 for byte in raw),
            "sha256": hashlib.sha256(raw).hexdigest(),
        }
        directory = self.options.dir
        with open(os.path.join(directory, name + ".eml.tmp"), "wb") as file:
            file.write(raw)
        os.rename(os.path.join(directory, name + ".eml.tmp"), os.path.join(directory, name + ".eml"))
        with open(os.path.join(directory, name + ".json.tmp"), "w") as file:
            json.dump(record, file)
        os.rename(os.path.join(directory, name + ".json.tmp"),
                  os.path.join(directory, name + ".json"))
        return record["headers"].get("message-id", "")

    async def handle_DATA(self, server, session, envelope):
        action = self.misbehaviour(envelope)
        if action == "tempfail":
            log("451 end of DATA")
            return "451 4.3.0 try again later (test server)"
        if action == "drop":
            log("dropped the connection at the end of DATA, message not kept")
            server.transport.abort()
            return "421 dropped"
        if action == "slow":
            await asyncio.sleep(self.options.delay_ms / 1000.0)
        message_id = self.keep(session, envelope, action or "accepted")
        if action == "accept_drop":
            log("kept %s, then dropped the connection" % message_id)
            server.transport.abort()
            return "421 dropped"
        log("250 kept %s for %d recipient(s)" % (message_id, len(envelope.rcpt_tos)))
        return "250 2.0.0 OK (test server)"


class Authenticator:
    def __init__(self, user, password):
        self.user, self.password = user.encode(), password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) \
            and hmac.compare_digest(auth_data.login, self.user) \
            and hmac.compare_digest(auth_data.password, self.password)
        log("AUTH %s %s" % (mechanism, "accepted" if ok else "refused"))
        # handled=False: aiosmtpd answers 535 itself on a failure.
        return AuthResult(success=ok, handled=False, auth_data=auth_data)


async def serve(options):
    loop = asyncio.get_running_loop()
    handler = Handler(options)
    kwargs = {"hostname": "smtp.test", "loop": loop}
    if options.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(options.tls_cert, options.tls_key)
        kwargs.update(tls_context=context, require_starttls=True)
    if options.auth_user:
        with open(options.auth_password_file) as file:
            password = file.read().rstrip("\r\n")
        kwargs.update(authenticator=Authenticator(options.auth_user, password),
                      auth_required=True, auth_require_tls=bool(options.tls_cert))
    # create_server on port 0 takes a free port without a race (aiosmtpd's Controller needs
    # the port up front).
    server = await loop.create_server(lambda: SMTP(handler, **kwargs), host="127.0.0.1",
                                      port=options.port)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def rule(text):
    """N or N:ADDRESS, for the misbehaviour switches."""
    count, _, address = text.partition(":")
    if not count.isdigit():
        raise argparse.ArgumentTypeError("expected N or N:ADDRESS")
    return int(count), address.lower() or None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, help="where received messages are written")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--reject", action="append", default=[])
    for name in ("--tempfail", "--drop", "--accept-drop", "--slow"):
        parser.add_argument(name, type=rule, action="append", default=[], metavar="N[:ADDRESS]")
    parser.add_argument("--delay-ms", type=int, default=0)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--auth-user")
    parser.add_argument("--auth-password-file")
    options = parser.parse_args()
    if bool(options.tls_cert) != bool(options.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if bool(options.auth_user) != bool(options.auth_password_file):
        parser.error("--auth-user and --auth-password-file go together")
    os.makedirs(options.dir, exist_ok=True)
    try:
        asyncio.run(serve(options))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
