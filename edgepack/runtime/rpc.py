"""One model pooled across boards with llama.cpp's RPC backend (`ggml-rpc-server` on each board,
`--rpc host:port,...` on the host that runs llama-server / llama-bench).

What is llama.cpp's: the servers, the transport, the device list and each device's memory (asked
through `llama-server --rpc ... --list-devices`, i.e. ggml_backend_rpc_get_device_memory), the
layer placement. What edgepack adds is the plan: how many layers each device takes
(`--tensor-split`, in llama.cpp's own order of devices) so that weights, KV cache and compute
buffers fit each one, or by how much the pool is short.

A CPU-only rpc-server reports its host's whole RAM as free (the pinned tree has no `-m` limit),
so a server may be given a cap: `host:port=6GiB`.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgepack import procs
from edgepack.errors import RpcError

DEFAULT_PORT = 50052
RPC_SERVER = "ggml-rpc-server"
MIB = 2**20
_DEVICE_LINE = re.compile(r"^\s+(\S+): (.*) \((\d+) MiB, (\d+) MiB free\)\s*$")


@dataclass(frozen=True)
class RpcServer:
    host: str
    port: int
    cap_bytes: int | None = None  # plan at most this much on the server

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"


def parse_servers(text: str) -> list[RpcServer]:
    """'h1:50052,h2:50052=6GiB' -> servers (an '=SIZE' caps what the plan puts on that server)."""
    from edgepack.measure.report import parse_size

    servers = []
    for part in (p.strip() for p in (text or "").split(",")):
        if not part:
            continue
        spec, _, cap = part.partition("=")
        host, sep, port = spec.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise RpcError(f"--rpc {part!r} is not HOST:PORT[=SIZE] (e.g. 192.168.1.11:{DEFAULT_PORT} or "
                           f"127.0.0.1:{DEFAULT_PORT}=512MiB)")
        try:
            cap_bytes = parse_size(cap) if cap else None
        except Exception:
            raise RpcError(f"--rpc {part!r}: {cap!r} is not a size (e.g. 512MiB, 6GiB)") from None
        servers.append(RpcServer(host, int(port), cap_bytes))
    if not servers:
        raise RpcError("--rpc needs at least one server as HOST:PORT")
    return servers


def rpc_tool(name: str) -> Path:
    """A tool of the native build made with RPC (`edgepack native build --tool rpc-server`)."""
    from edgepack.runtime.native import find_native

    build = find_native(rpc=True)
    path = build.tool(name) if build else None
    if path is None:
        raise RpcError(f"{name} with RPC support is not built; run `edgepack native build --tool rpc-server "
                       f"--tool {name}` first")
    return path


# ---------------------------------------------------------------- servers

@dataclass
class RpcServerProcess:
    """A `ggml-rpc-server` this process started (tests, benchmarks, `edgepack worker --rpc-port`)."""

    server: RpcServer
    process: subprocess.Popen

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wait_for_port(host: str, port: int, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RpcError(f"the RPC server on {host}:{port} exited (code {process.returncode})")
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RpcError(f"nothing answers on {host}:{port} after {timeout:.0f} s")


def start_server(port: int = DEFAULT_PORT, *, host: str = "127.0.0.1", threads: int | None = None,
                 log: Path | None = None) -> RpcServerProcess:
    """Start llama.cpp's RPC server bound to `host` (loopback unless told otherwise)."""
    cmd = [str(rpc_tool(RPC_SERVER)), "--host", host, "--port", str(port)]
    if threads:
        cmd += ["--threads", str(threads)]
    out = open(log, "wb") if log else subprocess.DEVNULL
    process = procs.popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port(host, port, process=process)
    except RpcError:
        process.kill()
        raise
    return RpcServerProcess(RpcServer(host, port), process)


# ---------------------------------------------------------------- asking the servers

@dataclass
class PoolDevice:
    """One device of the pool as llama.cpp lists it (RPC devices and any local GPU), in its order."""

    name: str                 # RPC0, RPC1, CUDA0, ...
    description: str          # the endpoint for RPC devices
    total_bytes: int
    free_bytes: int
    cap_bytes: int | None = None

    @property
    def budget_bytes(self) -> int:
        return min(self.free_bytes, self.cap_bytes) if self.cap_bytes else self.free_bytes


def parse_device_list(text: str) -> list[PoolDevice]:
    """`--list-devices` output: '  RPC0: 127.0.0.1:50052 (24000 MiB, 23000 MiB free)'."""
    devices = []
    for line in text.splitlines():
        m = _DEVICE_LINE.match(line)
        if m:
            devices.append(PoolDevice(m.group(1), m.group(2), int(m.group(3)) * MIB, int(m.group(4)) * MIB))
    return devices


def query_devices(servers: list[RpcServer], timeout: float = 60) -> list[PoolDevice]:
    """Ask every server for its memory, through llama.cpp's own client (llama-server --list-devices)."""
    for s in servers:
        try:
            socket.create_connection((s.host, s.port), timeout=5).close()
        except OSError as exc:
            raise RpcError(f"RPC server {s.endpoint} does not answer ({exc.strerror or exc}); start "
                           f"`{RPC_SERVER} --host HOST --port {s.port}` there") from None
    cmd = [str(rpc_tool("llama-server")), "--rpc", ",".join(s.endpoint for s in servers), "--list-devices"]
    proc = procs.run(cmd, capture_output=True, text=True, timeout=timeout)
    devices = parse_device_list(proc.stdout)
    by_endpoint = {s.endpoint: s for s in servers}
    for d in devices:
        server = by_endpoint.get(d.description)
        if server is not None:
            d.cap_bytes = server.cap_bytes
    missing = [s.endpoint for s in servers if s.endpoint not in {d.description for d in devices}]
    if proc.returncode != 0 or missing:
        detail = (proc.stderr.strip().splitlines() or ["no answer"])[-1]
        raise RpcError(f"RPC server {missing[0] if missing else servers[0].endpoint} gave no device ({detail})")
    return devices


# ---------------------------------------------------------------- the plan

@dataclass
class DeviceShare:
    device: str
    description: str
    layers: list[int]         # layer numbers; n_layers stands for the output layer
    weights_bytes: int
    kv_bytes: int
    compute_bytes: int
    budget_bytes: int

    @property
    def need_bytes(self) -> int:
        return self.weights_bytes + self.kv_bytes + self.compute_bytes

    @property
    def fits(self) -> bool:
        return self.need_bytes <= self.budget_bytes


@dataclass
class PoolPlan:
    model: str
    n_ctx: int
    kv_type: str
    n_layers: int
    fits: bool
    shares: list[DeviceShare]
    tensor_split: list[int]   # layers (output included) per device, llama.cpp's device order
    shortfall_bytes: int      # how much more memory the pool needs (0 when it fits)
    servers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def llama_args(self) -> list[str]:
        """The llama-server / llama-cli flags that run the model over the pool as planned."""
        return ["--rpc", ",".join(self.servers), "-ngl", str(self.n_layers + 1),
                "--tensor-split", ",".join(str(n) for n in self.tensor_split), "-c", str(self.n_ctx),
                "--fit", "off"]  # the plan decides; llama.cpp's own fitting would not know the caps

    def to_dict(self) -> dict:
        d = asdict(self)
        for share, s in zip(d["shares"], self.shares):
            share["need_bytes"], share["fits"] = s.need_bytes, s.fits
        return d | {"llama_args": self.llama_args()}


def _items(g, n_ctx: int, kv_type: str) -> list[tuple[int, int]]:
    """(weights, KV) of each layer, then of the output layer (llama.cpp's layer n_layers)."""
    from edgepack.machine.memory import kv_cache_bytes

    items = [(w, kv_cache_bytes(g, n_ctx, kv_type, range(i, i + 1))) for i, w in enumerate(g.layer_bytes)]
    # the output layer: output.weight (or a copy of the tied embedding) and the final norm
    items.append((g.output_bytes + g.other_bytes, 0))
    return items


def _shares(g, devices: list[PoolDevice], counts: list[int], n_ctx: int, kv_type: str) -> list[DeviceShare]:
    from edgepack.machine.memory import compute_buffer_bytes

    items = _items(g, n_ctx, kv_type)
    shares, start = [], 0
    for d, n in zip(devices, counts):
        layers = list(range(start, start + n))
        has_output = g.n_layers in layers
        compute = compute_buffer_bytes(g, n_ctx, with_output=has_output, with_layers=bool(layers)) if layers else 0
        shares.append(DeviceShare(d.name, d.description, layers, sum(items[i][0] for i in layers),
                                  sum(items[i][1] for i in layers), compute, d.budget_bytes))
        start += n
    return shares


def _greedy_counts(g, devices, n_ctx, kv_type) -> list[int] | None:
    """Fill each device in order with as many consecutive layers as fit; None when the pool is too small."""
    total = g.n_layers + 1
    counts, start = [], 0
    for d in devices:
        n = 0
        while start + n < total:
            trial = counts + [n + 1] + [0] * (len(devices) - len(counts) - 1)
            if not _shares(g, devices, trial, n_ctx, kv_type)[len(counts)].fits:
                break
            n += 1
        counts.append(n)
        start += n
    return counts if start == total else None


def _proportional_counts(total: int, budgets: list[int]) -> list[int]:
    """Layers in proportion to budgets (llama.cpp's own default uses free memory the same way)."""
    whole = sum(budgets) or 1
    counts = [int(total * b / whole) for b in budgets]
    for i in sorted(range(len(budgets)), key=lambda i: -(total * budgets[i] / whole - counts[i]))[:total - sum(counts)]:
        counts[i] += 1
    return counts


def plan_pool(model, devices: list[PoolDevice], n_ctx: int, *, kv_type: str = "f16",
              servers: list[RpcServer] | None = None) -> PoolPlan:
    """Split `model`'s layers over `devices` (llama.cpp's order) so each one's share fits its budget."""
    from edgepack.errors import PlanError
    from edgepack.machine.geometry import load_geometry

    g = load_geometry(model)
    if n_ctx <= 0:
        raise PlanError(f"--ctx {n_ctx}: give a positive context length")
    if not devices:
        raise RpcError("the pool has no device")
    total = g.n_layers + 1
    counts = _proportional_counts(total, [d.budget_bytes for d in devices])
    shares = _shares(g, devices, counts, n_ctx, kv_type)
    if not all(s.fits for s in shares):
        greedy = _greedy_counts(g, devices, n_ctx, kv_type)
        if greedy is not None:
            counts, shares = greedy, _shares(g, devices, greedy, n_ctx, kv_type)
    fits = all(s.fits for s in shares)
    shortfall = 0 if fits else max(sum(s.need_bytes for s in shares) - sum(d.budget_bytes for d in devices),
                                   max(s.need_bytes - s.budget_bytes for s in shares))
    notes = []
    if any(d.cap_bytes for d in devices):
        notes.append("budgets are capped by the '=SIZE' given with --rpc")
    return PoolPlan(model=str(getattr(g, "path", model)), n_ctx=n_ctx, kv_type=kv_type, n_layers=g.n_layers,
                    fits=fits, shares=shares, tensor_split=counts, shortfall_bytes=shortfall,
                    servers=[s.endpoint for s in servers] if servers else [d.description for d in devices
                                                                         if d.name.startswith("RPC")],
                    notes=notes)


def plan_rpc(model, servers: str | list[RpcServer], n_ctx: int, *, kv_type: str = "f16") -> PoolPlan:
    """Ask the servers for their memory and plan the split (`edgepack plan MODEL --rpc ...`)."""
    servers = parse_servers(servers) if isinstance(servers, str) else servers
    return plan_pool(model, query_devices(servers), n_ctx, kv_type=kv_type, servers=servers)


# ---------------------------------------------------------------- speed over the pool

def _llama_bench(model: Path, extra: list[str], *, n_prompt: int, n_gen: int, repetitions: int,
                 threads: int | None) -> list[dict]:
    import json

    cmd = [str(rpc_tool("llama-bench")), "-m", str(model), "-p", str(n_prompt), "-n", str(n_gen),
           "-r", str(repetitions), "-o", "json", *extra]
    if threads:
        cmd += ["-t", str(threads)]
    proc = procs.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RpcError(f"llama-bench failed (exit {proc.returncode}): "
                       f"{(proc.stderr.strip().splitlines() or ['no output'])[-1]}")
    return json.loads(proc.stdout)


def bench_pool(model, plan: PoolPlan, *, n_prompt: int = 512, n_gen: int = 128, repetitions: int = 3,
               threads: int | None = None, baseline: bool = True) -> list[dict]:
    """pp/tg over the pool with llama.cpp's llama-bench, and (baseline) in one local process.

    Rows keep llama-bench's fields; `setup` says "rpc pool (N servers)" or "one process".
    """
    if not plan.fits:
        raise RpcError(f"the pool is {plan.shortfall_bytes / MIB:.0f} MiB short for this model at context "
                       f"{plan.n_ctx}; add a server or use a smaller quant")
    pool = ["--rpc", ",".join(plan.servers), "-ngl", str(plan.n_layers + 1),
            "-ts", "/".join(str(n) for n in plan.tensor_split)]
    rows = [r | {"setup": f"rpc pool ({len(plan.servers)} servers)", "machine": "rpc pool"}
            for r in _llama_bench(Path(model), pool, n_prompt=n_prompt, n_gen=n_gen, repetitions=repetitions,
                                  threads=threads)]
    if baseline:
        rows += [r | {"setup": "one process", "machine": "one process"}
                 for r in _llama_bench(Path(model), ["-ngl", "0"], n_prompt=n_prompt, n_gen=n_gen,
                                       repetitions=repetitions, threads=threads)]
    for r in rows:
        r["test"] = f"pp{r['n_prompt']}" if r.get("n_prompt") else f"tg{r.get('n_gen')}"
    return rows


__all__ = ["DEFAULT_PORT", "PoolDevice", "PoolPlan", "RpcServer", "RpcServerProcess", "parse_device_list",
           "bench_pool", "parse_servers", "plan_pool", "plan_rpc", "query_devices", "rpc_tool", "start_server"]
