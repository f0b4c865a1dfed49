"""WapoSockets.connect (TCP and TLS for scripts) against real peers on 127.0.0.1.

The peers run in a process of their own (see ``Peers``). Loopback is denied by default: the runs
allow 127.0.0.1/32 explicitly.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl
import subprocess
import sys

import pytest

from wapo.host import Limits
from wapo.host.net.policy import NetworkPolicy
from wapo.js.runner import js_instance, run_js

ALLOW = ("127.0.0.1/32",)


def make_ca_and_server_cert():
    """A throwaway CA and a server certificate it signed, for localhost and 127.0.0.1 (PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wapo test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ca.public_bytes(pem), cert.public_bytes(pem), key_pem


PEERS_PROCESS = r"""
import asyncio, json, socket, ssl, sys
from pathlib import Path

async def echo(reader, writer):
    try:
        while data := await reader.read(256 * 1024):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        else:
            writer.close()
    except (ConnectionError, ssl.SSLError):
        pass

async def count(reader, writer):
    n = 0
    while data := await reader.read(65536):
        n += len(data)
    writer.write(f"got {n}".encode())
    await writer.drain()
    writer.close()

async def bye(reader, writer):
    writer.write(b"bye")
    await writer.drain()
    writer.close()

async def main(tmp):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    ports = {}
    for name, handler, tls in (("echo", echo, None), ("count", count, None), ("bye", bye, None), ("tls", echo, ctx)):
        server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=tls)
        ports[name] = server.sockets[0].getsockname()[1]
    s = socket.socket()  # a port nobody listens on: bound, then closed
    s.bind(("127.0.0.1", 0))
    ports["closed"] = s.getsockname()[1]
    s.close()
    print(json.dumps(ports), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the test closes stdin

asyncio.run(main(Path(sys.argv[1])))
"""


class Peers:
    """TCP servers on 127.0.0.1, in a process of their own: echo (until EOF, then EOF back), count
    (read to EOF, answer the byte count, close), bye (say "bye" and close at once), and a TLS echo.

    Not a thread of this process: with the peers' event loop in a thread beside the host's, about
    one run in six of test_resources_are_freed hung with the peer never reading bytes the kernel
    had (seen with the code of session 1 too; 0 in 40 with the peers in a process)."""

    def __init__(self, tmp) -> None:
        self.tmp = tmp
        self.ports: dict[str, int] = {}
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        ca, cert, key = make_ca_and_server_cert()
        self.ca_path = self.tmp / "ca.pem"
        self.ca_path.write_bytes(ca)
        (self.tmp / "cert.pem").write_bytes(cert)
        (self.tmp / "key.pem").write_bytes(key)
        self.proc = subprocess.Popen([sys.executable, "-c", PEERS_PROCESS, str(self.tmp)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        assert line, "the peers process did not start"
        self.ports = json.loads(line)

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.stdin.close()  # type: ignore[union-attr]
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def peers(tmp_path_factory):
    p = Peers(tmp_path_factory.mktemp("tls"))
    p.start()
    yield p
    p.stop()


def run(peers: Peers, code: str, *, allow=ALLOW, extra_ca=True, **limits):
    limits.setdefault("time", 20)
    network = NetworkPolicy(allow=allow, tls_extra_ca=str(peers.ca_path) if extra_ca else None)
    prefix = "const PORTS = " + json.dumps(peers.ports) + ";\n"
    prefix += "const {connect} = WapoSockets;\n"
    prefix += """
        async function readAll(readable) {
            const reader = readable.getReader(); const parts = []; let n = 0;
            for (;;) { const {value, done} = await reader.read(); if (done) break; parts.push(value); n += value.length; }
            const out = new Uint8Array(n); let o = 0; for (const p of parts) { out.set(p, o); o += p.length; }
            return out;
        }
        const text = (b) => new TextDecoder().decode(b);
    """
    return run_js(prefix + code, limits=Limits(**limits), module=True, network=network)


def output(result):
    assert result.ok, result.error and result.error.describe()
    return json.loads(result.output)


def test_echo_round_trip_opened_and_closed(peers):
    out = output(run(peers, """
        const socket = connect(`127.0.0.1:${PORTS.echo}`);
        const info = await socket.opened;
        const writer = socket.writable.getWriter();
        await writer.write(new TextEncoder().encode('hello '));
        await writer.write('wörld');
        await writer.close();
        const got = text(await readAll(socket.readable));
        await socket.closed;
        scriptOutput = JSON.stringify({info, got, tag: Object.prototype.toString.call(socket),
                                       secure: socket.secureTransport});
    """))
    assert out["got"] == "hello wörld"
    assert out["info"]["remoteAddress"] == f"127.0.0.1:{peers.ports['echo']}"
    assert out["info"]["localAddress"].startswith("127.0.0.1:")
    assert out["tag"] == "[object Socket]" and out["secure"] == "off"


def test_object_address_pipe_and_many_sockets(peers):
    out = output(run(peers, """
        const results = await Promise.all([...Array(10).keys()].map(async (i) => {
            const socket = connect({hostname: '127.0.0.1', port: PORTS.echo});
            const body = new ReadableStream({start(c) { c.enqueue(new TextEncoder().encode('n' + i)); c.close(); }});
            await body.pipeTo(socket.writable);
            return text(await readAll(socket.readable));
        }));
        scriptOutput = JSON.stringify(results);
    """))
    assert out == [f"n{i}" for i in range(10)]


def test_tls_with_the_policy_extra_ca(peers):
    code = """
        const res = {};
        for (const hostname of ['localhost', '127.0.0.1']) {
            const socket = connect({hostname, port: PORTS.tls}, {secureTransport: 'on'});
            try {
                await socket.opened;
                const w = socket.writable.getWriter();
                await w.write('secret ' + hostname);
                const r = socket.readable.getReader();
                res[hostname] = text((await r.read()).value);
                await socket.close();
            } catch (e) { res[hostname] = [e.name, e.message]; }
        }
        scriptOutput = JSON.stringify(res);
    """
    out = output(run(peers, code))
    assert out == {"localhost": "secret localhost", "127.0.0.1": "secret 127.0.0.1"}
    # without the extra CA, the certificate is not trusted
    out = output(run(peers, code, extra_ca=False))
    for host in ("localhost", "127.0.0.1"):
        assert out[host][0] == "TypeError" and "certificate" in out[host][1], out


def test_denied_addresses_are_type_errors(peers):
    out = output(run(peers, """
        const res = {};
        try { connect(`127.0.0.1:${PORTS.echo}`); res.literal = 'connected' }
        catch (e) { res.literal = [e.name, e.message] }
        const s = connect({hostname: 'localhost', port: PORTS.echo});
        try { await s.opened; res.name = 'opened' } catch (e) { res.name = [e.name, e.message] }
        try { await s.closed; res.closed = 'resolved' } catch (e) { res.closed = e.name }
        try { await s.readable.getReader().read(); res.read = 'read' } catch (e) { res.read = e.name }
        try { connect('[::1]:' + PORTS.echo); } catch (e) { res.v6 = e.message }
        try { connect('169.254.169.254:80'); } catch (e) { res.meta = e.message }
        scriptOutput = JSON.stringify(res);
    """, allow=()))
    assert out["literal"][0] == "TypeError" and "loopback" in out["literal"][1] and "not allowed" in out["literal"][1]
    assert out["name"][0] == "TypeError" and "of localhost" in out["name"][1] and "loopback" in out["name"][1]
    assert out["closed"] == "TypeError" and out["read"] == "TypeError"
    assert "loopback" in out["v6"] and "cloud metadata" in out["meta"]


def test_bad_arguments_and_refused_port(peers):
    out = output(run(peers, """
        const res = [];
        for (const a of ['nohost', 'h:0', 'h:70000', {port: 1}, 42, null])
            try { connect(a); res.push('ok') } catch (e) { res.push(e.name) }
        try { connect(`127.0.0.1:${PORTS.echo}`, {secureTransport: 'starttls'}) } catch (e) { res.push(e.name) }
        const s = connect(`127.0.0.1:${PORTS.closed}`);
        try { await s.opened } catch (e) { res.push([e.name, e.message]) }
        scriptOutput = JSON.stringify(res);
    """))
    assert out[:7] == ["TypeError"] * 7
    assert out[7][0] == "TypeError" and "refused" in out[7][1].lower()


def test_half_close_and_close(peers):
    out = output(run(peers, """
        const res = {};
        // half-close: the server reads to EOF, then answers; allowHalfOpen keeps our side readable
        const a = connect(`127.0.0.1:${PORTS.count}`, {allowHalfOpen: true});
        const w = a.writable.getWriter();
        await w.write(new Uint8Array(100000));
        await w.close();
        res.count = text(await readAll(a.readable));
        await a.closed; res.aClosed = true;
        // the server closes first: the readable ends; without allowHalfOpen the writable closes too
        const b = connect(`127.0.0.1:${PORTS.bye}`);
        res.bye = text(await readAll(b.readable));
        await b.closed; res.bClosed = true;
        try { await b.writable.getWriter().write('x'); res.bWrite = 'ok' } catch (e) { res.bWrite = e.name }
        // close(): closed resolves, reads end, writes fail
        const c = connect(`127.0.0.1:${PORTS.echo}`);
        await c.opened;
        const r = c.readable.getReader();
        const pending = r.read();
        await c.close();
        res.pendingRead = (await pending).done;
        try { await c.writable.getWriter().write('x'); res.cWrite = 'ok' } catch (e) { res.cWrite = e.name }
        // close() before opened
        const d = connect(`127.0.0.1:${PORTS.echo}`);
        const dc = d.close();
        try { await d.opened; res.dOpened = 'opened' } catch (e) { res.dOpened = e.name }
        await dc; res.dClosed = true;
        scriptOutput = JSON.stringify(res);
    """))
    assert out == {"count": "got 100000", "aClosed": True, "bye": "bye", "bClosed": True, "bWrite": "TypeError",
                   "pendingRead": True, "cWrite": "TypeError", "dOpened": "TypeError", "dClosed": True}


def test_large_transfer_bounded_memory_and_throughput(peers):
    size = 64 * 1024 * 1024
    peak: list[int] = []
    code = "const PORTS = " + json.dumps(peers.ports) + ";\n" + f"""
        const SIZE = {size};
        const socket = WapoSockets.connect(`127.0.0.1:${{PORTS.echo}}`);
        await socket.opened;
        const t0 = performance.now();
        const chunk = new Uint8Array(64 * 1024).map((_, i) => i & 255);
        const writing = (async () => {{
            const w = socket.writable.getWriter();
            for (let sent = 0; sent < SIZE; sent += chunk.length) await w.write(chunk);
            await w.close();
        }})();
        const reader = socket.readable.getReader();
        let n = 0, bad = 0;
        for (;;) {{
            const {{value, done}} = await reader.read();
            if (done) break;
            if (value[0] !== (n & 255)) bad++;
            n += value.length;
        }}
        await writing;
        await socket.closed;
        const ms = performance.now() - t0;
        console.log('done');
        await new Promise(r => setTimeout(r, 1));  // the line is seen at the end of this step
        scriptOutput = JSON.stringify({{n, bad, ms}});
    """
    inst = js_instance(code, limits=Limits(memory=32 * 1024 * 1024, time=60), module=True,
                       network=NetworkPolicy(allow=ALLOW),
                       on_log=lambda rec: peak.append(inst._state.memory.size()))
    result = asyncio.run(inst.run())
    out = output(result)
    assert out["n"] == size and out["bad"] == 0
    mbps = 2 * size / 1e6 / (out["ms"] / 1000)
    print(f"\nTCP echo from JS: {size >> 20} MiB each way in {out['ms']:.0f} ms = "
          f"{size / 1e6 / (out['ms'] / 1000):.0f} MB/s each way ({mbps:.0f} MB/s both ways); "
          f"guest memory {peak[0] / 2**20:.1f} MiB")
    assert peak[0] <= 32 * 1024 * 1024


def test_resources_are_freed(peers):
    seen = []
    code = "const PORTS = " + json.dumps(peers.ports) + ";\n" + """
        const sleep = (ms) => new Promise(r => setTimeout(r, ms));
        await sleep(1);
        // log, then wait: the host sees the line when the step ends, in both thread modes
        console.log('before');
        await sleep(1);
        for (let i = 0; i < 200; i++) {
            const s = WapoSockets.connect(`127.0.0.1:${PORTS.echo}`);
            if (i % 3 === 0) { await s.close(); continue; }
            await s.opened;
            const w = s.writable.getWriter(); await w.write('x');
            if (i % 3 === 1) { await s.readable.getReader().read(); await s.close(); }
            else { await w.close(); await s.readable.getReader().read(); await s.readable.cancel?.().catch(() => {}); await s.close(); }
        }
        await sleep(50);
        console.log('after');
        await sleep(1);
    """
    inst = js_instance(code, limits=Limits(time=30), module=True, network=NetworkPolicy(allow=ALLOW),
                       on_log=lambda rec: seen.append(len(inst._state.resources)))
    result = asyncio.run(inst.run())
    assert result.ok, result.error and result.error.describe()
    assert seen[0] == seen[1], "guest resources leaked"
