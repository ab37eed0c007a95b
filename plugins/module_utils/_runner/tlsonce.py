# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The direct channel's security: a one-time TLS identity and a one-time token, for one transfer.

The receiver makes a fresh P-256 key and self-signed certificate (``openssl``)
for every transfer; the key lives in a private temporary directory only until
it is loaded, then only in memory.  The controller passes the certificate's
SHA-256 fingerprint to the sender, which pins it: a listener showing any other
certificate is refused before a byte of data is sent.

Inside TLS both ends prove they hold the one-time token the controller gave
each of them (over their SSH sessions, never on a command line) without
sending it: HMAC-SHA256 over both nonces and the pinned fingerprint, the
receiver first.  A wrong token is refused by the receiver; a receiver that does
not know the token is refused by the sender.  The listening socket closes as
soon as one sender is in.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import hashlib
import hmac
import os
import shutil
import ssl
import subprocess
import tempfile

from .frames import JSON, PROTOCOL, TransferError

_SUBJECT = "/CN=dbfleet-transfer"


def _openssl():
    for candidate in ("/usr/bin/openssl", "/bin/openssl", "/usr/local/bin/openssl"):
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("openssl")


def server_context():
    """``(SSLContext, fingerprint hex)`` of a fresh one-time identity; TransferError without ``openssl``."""
    openssl = _openssl()
    if not openssl:
        raise TransferError("openssl is not installed on the receiving host, so no one-time certificate can be made: "
                            "install openssl, or use method relay")
    workdir = tempfile.mkdtemp(prefix="dbfleet-transfer-")
    old_umask = os.umask(0o077)
    try:
        key, cert = os.path.join(workdir, "key.pem"), os.path.join(workdir, "cert.pem")
        proc = subprocess.run(
            [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-sha256",
             "-days", "1", "-subj", _SUBJECT, "-keyout", key, "-out", cert],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        if proc.returncode != 0:
            raise TransferError("openssl could not make a one-time certificate: %s"
                                % proc.stderr.decode("utf-8", "replace").strip()[-300:])
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert, key)
        with open(cert, "r", encoding="ascii") as handle:
            der = ssl.PEM_cert_to_DER_cert(handle.read())
    finally:
        os.umask(old_umask)
        shutil.rmtree(workdir, ignore_errors=True)
    return context, hashlib.sha256(der).hexdigest()


def client_context():
    """A client context that accepts any certificate: the caller pins the fingerprint (:func:`check_pin`)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def fingerprint(sock):
    """SHA-256 (hex) of the certificate the TLS peer showed."""
    der = sock.getpeercert(binary_form=True)
    return hashlib.sha256(der).hexdigest() if der else None


def check_pin(sock, expected, where):
    """Raise TransferError unless the peer's certificate is the one-time one the controller named."""
    seen = fingerprint(sock)
    if not seen or not hmac.compare_digest(seen, expected):
        raise TransferError("the listener at %s showed certificate %s, not the one-time certificate %s the controller "
                            "named: refused, nothing sent (someone else is listening there, or the port was reused)"
                            % (where, seen, expected))


def _proof(token, side, client_nonce, server_nonce, pinned):
    message = ("dbfleet-transfer %s|%s|%s|%s" % (side, client_nonce, server_nonce, pinned)).encode("ascii")
    return hmac.new(binascii.unhexlify(token), message, hashlib.sha256).hexdigest()


def _nonce():
    return binascii.hexlify(os.urandom(32)).decode("ascii")


def authenticate_client(channel, token, pinned):
    """The sender's half: prove the token and check the receiver's proof (TransferError if it fails)."""
    client_nonce = _nonce()
    channel.send_message(JSON, {"type": "hello", "protocol": PROTOCOL, "nonce": client_nonce})
    challenge = channel.recv_message("challenge")
    server_nonce = str(challenge.get("nonce") or "")
    if len(server_nonce) != 64 or not hmac.compare_digest(
            str(challenge.get("proof") or ""), _proof(token, "server", client_nonce, server_nonce, pinned)):
        raise TransferError("the receiver could not prove it holds this transfer's one-time token: refused, nothing sent")
    channel.send_message(JSON, {"type": "auth", "proof": _proof(token, "client", client_nonce, server_nonce, pinned)})
    channel.recv_message("welcome")


def authenticate_server(channel, token, pinned):
    """The receiver's half; returns None when the sender proved the token, else the reason it is refused."""
    hello = channel.recv_message("hello")
    client_nonce = str(hello.get("nonce") or "")
    if hello.get("protocol") != PROTOCOL or len(client_nonce) != 64:
        return "it does not speak this transfer protocol (version %r)" % hello.get("protocol")
    server_nonce = _nonce()
    channel.send_message(JSON, {"type": "challenge", "nonce": server_nonce,
                                "proof": _proof(token, "server", client_nonce, server_nonce, pinned)})
    auth = channel.recv_message("auth")
    if not hmac.compare_digest(str(auth.get("proof") or ""), _proof(token, "client", client_nonce, server_nonce, pinned)):
        return "it does not hold this transfer's one-time token"
    channel.send_message(JSON, {"type": "welcome"})
    return None
