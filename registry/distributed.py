"""Scan on a Ray cluster: the scan's "map" step (hashing, sniffing, analyzers) as Ray tasks.

Only ``scan --ray`` / ``audit --ray`` / ``probe --ray`` import this module, and only it imports ``ray``
(the core never does; ``ray`` is the ``modelreg[ray]`` extra). The driver keeps everything else of a local
scan: discovery, the incremental index (only new or changed files reach :class:`RayMapper`), and the one
writer that commits whole-file batches (:func:`registry.scan.scan`). What changes is where
:func:`registry.scan.analyse_file` runs:

* **tasks**: consecutive files are grouped into chunks (at most ``chunk_files`` files and ``chunk_bytes``
  bytes, and small enough that each CPU of the cluster gets about four; a larger file is a chunk of its
  own); each chunk is one Ray task (1 CPU) that returns its results
  as one Arrow record batch (:func:`to_arrow`, decoded on the driver by :func:`from_arrow`).
* **placement**: before the first task, one small task pinned to each alive node checks which of the
  files' folders that node sees; each chunk then prefers (soft node affinity) the least-loaded node that
  sees all of its folders. Soft: when that node is gone, Ray places the task elsewhere.
* **bounded**: at most ``max_tasks`` chunks and ``max_bytes`` bytes of files are in the window (submitted
  and not yet handed to the writer); one chunk larger than ``max_bytes`` still goes when the window is empty.
* **order**: results are handed to the writer in the order of the files, as a local pool does, so the
  registry (which path a duplicated content is first recorded at, the event order) equals a local scan's.
* **failures**: Ray does not retry (``max_retries=0``); a chunk that fails (worker crash, node lost, result
  object lost, an exception) is resubmitted one file per task on the alive nodes; a file that fails a
  second time becomes a ``scan.task-failed`` finding on its path (it is not registered, and the next
  scan tries it again).
* **versions**: every batch names the analyzer versions of the node that made it; a batch from a node
  whose analyzers differ from the driver's stops the scan (a mixed cluster would make a registry that
  depends on where each file ran).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from registry.analysis import analyzer_versions
from registry.errors import RegistryError
from registry.findings import Finding, Severity, finding
from registry.scan import R_TASK_FAILED, Analysed, ScanItem, _init_worker, analyse_file
from registry.store.write import BlobRecord, TensorRows

#: one file for a task: (path as bytes, size, mtime_ns, inode, device)
FileSpec = tuple[bytes, int, int, int, int]

# ---------------------------------------------------------------------------------------------------
# Arrow encoding of analysis results (what a task returns)
# ---------------------------------------------------------------------------------------------------

_TENSOR = pa.struct(
    [
        ("name", pa.string()),
        ("dtype", pa.string()),
        ("shape", pa.list_(pa.int64())),
        ("data_begin", pa.int64()),
        ("data_end", pa.int64()),
        ("file_offset", pa.int64()),
        ("nbytes", pa.int64()),
    ]
)

SCHEMA = pa.schema(
    [
        # paths as their exact bytes: a file name need not be UTF-8
        ("path", pa.binary()),
        ("size", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("inode", pa.int64()),
        ("device", pa.int64()),
        ("sha256", pa.string()),
        ("error", pa.string()),
        ("seconds", pa.float64()),
        ("steps", pa.map_(pa.string(), pa.float64())),
        ("path_findings", pa.string()),
        # the blob (all null when the content is known already or could not be read)
        ("blob_size", pa.int64()),
        ("blob_hashes", pa.map_(pa.string(), pa.string())),
        ("blob_format", pa.string()),
        ("blob_header_len", pa.int64()),
        ("blob_n_tensors", pa.int64()),
        ("blob_metadata_json", pa.string()),
        ("blob_analyzers", pa.string()),
        ("blob_tensors", pa.list_(_TENSOR)),
        ("blob_findings", pa.string()),
        ("blob_rows", pa.string()),
        ("blob_columns", pa.string()),
    ]
)


def _enc_default(v: Any) -> Any:
    if isinstance(v, bytes | bytearray | memoryview):
        return {"__bytes_hex__": bytes(v).hex()}
    raise TypeError(f"cannot send {type(v).__name__} from a Ray task: {v!r}")


def _dec_hook(d: dict[str, Any]) -> Any:
    if len(d) == 1 and "__bytes_hex__" in d:
        return bytes.fromhex(d["__bytes_hex__"])
    return d


def _dumps(v: Any) -> str:
    # ensure_ascii: text from undecodable file names (lone surrogates) survives the round trip
    return json.dumps(v, ensure_ascii=True, allow_nan=True, default=_enc_default)


def _loads(s: str) -> Any:
    return json.loads(s, object_hook=_dec_hook)


def _findings_json(fs: Sequence[Finding]) -> str:
    return _dumps([[f.rule_id, int(f.severity), f.message, f.evidence] for f in fs])


def _findings_from(s: str) -> list[Finding]:
    return [Finding(r, Severity(sev), m, ev) for r, sev, m, ev in _loads(s)]


def to_arrow(results: Sequence[Analysed], versions: str | None = None) -> pa.RecordBatch:
    """One record batch for the results of a task; schema metadata names the node and its analyzers."""
    cols: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}
    for a in results:
        b = a.blob
        cols["path"].append(os.fsencode(a.path))
        for k in ("size", "mtime_ns", "inode", "device", "sha256", "error", "seconds"):
            cols[k].append(getattr(a, k))
        cols["steps"].append(list(a.steps.items()))
        cols["path_findings"].append(_findings_json(a.path_findings))
        if b is None:
            for k in cols:
                if k.startswith("blob_"):
                    cols[k].append(None)
            continue
        cols["blob_size"].append(b.size)
        cols["blob_hashes"].append(list(b.hashes.items()))
        cols["blob_format"].append(b.format)
        cols["blob_header_len"].append(b.header_len)
        cols["blob_n_tensors"].append(b.n_tensors)
        cols["blob_metadata_json"].append(b.metadata_json)
        cols["blob_analyzers"].append(b.analyzers)
        t = b.tensors
        cols["blob_tensors"].append(
            [
                {
                    "name": t.name[i], "dtype": t.dtype[i], "shape": list(t.shape[i]),
                    "data_begin": t.data_begin[i], "data_end": t.data_end[i],
                    "file_offset": t.file_offset[i], "nbytes": t.nbytes[i],
                }
                for i in range(len(t))
            ]
        )
        cols["blob_findings"].append(_findings_json(b.findings))
        cols["blob_rows"].append(_dumps(b.rows))
        cols["blob_columns"].append(_dumps(b.columns))
    meta = {
        "node": socket.gethostname(),
        "node_id": _node_id(),
        "analyzers": versions if versions is not None else analyzer_versions(),
    }
    return pa.RecordBatch.from_arrays(
        [pa.array(cols[f.name], f.type) for f in SCHEMA], schema=SCHEMA.with_metadata(meta)
    )


def _node_id() -> str:
    """The Ray node this runs on ("" outside a Ray worker)."""
    import sys

    if "ray" not in sys.modules:
        return ""
    try:
        return str(sys.modules["ray"].get_runtime_context().get_node_id())
    except Exception:  # noqa: BLE001 - not connected
        return ""


def batch_meta(batch: pa.RecordBatch) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in (batch.schema.metadata or {}).items()}


def from_arrow(batch: pa.RecordBatch) -> list[Analysed]:
    """The :class:`Analysed` results a task sent (the exact inverse of :func:`to_arrow`)."""
    rows = batch.to_pylist()
    out: list[Analysed] = []
    for r in rows:
        blob = None
        if r["blob_format"] is not None:
            tr = TensorRows()
            for t in r["blob_tensors"]:
                tr.name.append(t["name"])
                tr.dtype.append(t["dtype"])
                tr.shape.append(list(t["shape"]))
                tr.data_begin.append(t["data_begin"])
                tr.data_end.append(t["data_end"])
                tr.file_offset.append(t["file_offset"])
                tr.nbytes.append(t["nbytes"])
            blob = BlobRecord(
                sha256=r["sha256"],
                size=r["blob_size"],
                hashes=dict(r["blob_hashes"]),
                format=r["blob_format"],
                header_len=r["blob_header_len"],
                n_tensors=r["blob_n_tensors"],
                metadata_json=r["blob_metadata_json"],
                analyzers=r["blob_analyzers"],
                tensors=tr,
                findings=_findings_from(r["blob_findings"]),
                rows=_loads(r["blob_rows"]),
                columns=_loads(r["blob_columns"]),
            )
        out.append(
            Analysed(
                path=os.fsdecode(r["path"]),
                size=r["size"],
                mtime_ns=r["mtime_ns"],
                inode=r["inode"],
                device=r["device"],
                blob=blob,
                sha256=r["sha256"],
                path_findings=_findings_from(r["path_findings"]),
                error=r["error"],
                seconds=r["seconds"],
                steps=dict(r["steps"]),
            )
        )
    return out


# ---------------------------------------------------------------------------------------------------
# the task side (runs in Ray worker processes; module-level so that workers import it by name)
# ---------------------------------------------------------------------------------------------------

_LOADED: str | None = None


def analyse_chunk(
    known_box: list[Any],
    known_key: str,
    files: list[FileSpec],
    rehash: bool,
    delay_s: float = 0.0,
    crash_names: tuple[str, ...] = (),
) -> pa.RecordBatch:
    """Analyse ``files`` here and return their results as one Arrow batch. ``known_box`` holds the object
    ref of the registered SHA-256 set (boxed so Ray does not fetch it for every task; it is fetched once
    per worker process and scan, keyed by ``known_key``). Test knobs (never set by the CLI): ``delay_s``
    slows each file (makes "a node dies mid-scan" reliable); a file whose name is in ``crash_names`` kills
    the worker process, as a crash in native code would."""
    global _LOADED
    if known_key != _LOADED:
        import ray

        _init_worker(ray.get(known_box[0]))
        _LOADED = known_key
    results = []
    for path_b, size, mtime_ns, inode, device in files:
        if delay_s:
            time.sleep(delay_s)
        if crash_names and os.path.basename(os.fsdecode(path_b)) in crash_names:
            os._exit(70)
        results.append(analyse_file(os.fsdecode(path_b), size, mtime_ns, inode, device, rehash))
    return to_arrow(results)


def visible_dirs(dirs: list[bytes]) -> tuple[str, list[bool]]:
    """This node's analyzer versions, and which of ``dirs`` it sees (a node-pinned check task; that it
    runs at all shows the node can import modelreg)."""
    return analyzer_versions(), [os.path.isdir(os.fsdecode(d)) for d in dirs]


def error_line(err: BaseException) -> str:
    """One line for an error a task raised: its type and the last line of its text (Ray's task errors
    carry the remote traceback; its last line names the cause)."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return f"{type(err).__name__}: {lines[-1]}" if lines else type(err).__name__


# ---------------------------------------------------------------------------------------------------
# the driver side
# ---------------------------------------------------------------------------------------------------


def connect(address: str, local_cpus: int | None = None) -> bool:
    """Connect to Ray at ``address`` (``auto``, ``host:port``, ``ray://…``) or start a local one (``local``);
    True when the caller must shut it down afterwards (False: this process was connected already)."""
    import ray

    if ray.is_initialized():
        return False
    kw: dict[str, Any] = {"logging_level": "WARNING", "log_to_driver": False, "configure_logging": True}
    if address == "local":
        ray.init(num_cpus=local_cpus, include_dashboard=False, **kw)
    else:
        ray.init(address=address, **kw)
    return True


@dataclass
class RayProgress:
    """What the driver has handed to the writer so far; ``eta_s`` from the bytes rate since the start."""

    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    elapsed_s: float = 0.0
    retried_files: int = 0
    failed_files: int = 0
    nodes: int = 0
    #: files analysed per Ray node id
    by_node: dict[str, int] = field(default_factory=dict)

    @property
    def eta_s(self) -> float | None:
        if self.bytes_done <= 0 or self.elapsed_s <= 0:
            return None
        return (self.bytes_total - self.bytes_done) / (self.bytes_done / self.elapsed_s)

    def line(self) -> str:
        eta = self.eta_s
        return (
            f"ray: {self.files_done}/{self.files_total} files, {_amount(self.bytes_done, self.bytes_total)}"
            f" on {self.nodes} nodes, {self.elapsed_s:.0f}s"
            + (f", ETA {eta:.0f}s" if eta is not None else "")
            + (f", {self.retried_files} files retried" if self.retried_files else "")
            + (f", {self.failed_files} failed twice" if self.failed_files else "")
        )


def _amount(done: int, total: int) -> str:
    """``done/total`` in the decimal unit that suits ``total`` (kB, MB, GB, TB)."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if total >= scale:
            return f"{done / scale:.2f}/{total / scale:.2f} {unit}"
    return f"{done / 1e3:.1f}/{total / 1e3:.1f} kB"


@dataclass
class _Chunk:
    items: list[ScanItem]
    nbytes: int
    results: dict[int, Analysed] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return len(self.results) == len(self.items)


@dataclass
class _Task:
    chunk: _Chunk
    idx: list[int]
    attempt: int
    node: str | None


def _spec(it: ScanItem) -> FileSpec:
    assert it.st is not None
    return (os.fsencode(it.path), it.st.st_size, it.st.st_mtime_ns, it.st.st_ino, it.st.st_dev)


def chunks(items: Sequence[ScanItem], chunk_files: int, chunk_bytes: int) -> list[_Chunk]:
    """Consecutive files grouped into tasks: at most ``chunk_files`` files and ``chunk_bytes`` bytes each
    (a file larger than ``chunk_bytes`` is a task of its own)."""
    out: list[_Chunk] = []
    cur: list[ScanItem] = []
    nb = 0
    for it in items:
        assert it.st is not None
        size = it.st.st_size
        if cur and (len(cur) >= chunk_files or nb + size > chunk_bytes):
            out.append(_Chunk(cur, nb))
            cur, nb = [], 0
        cur.append(it)
        nb += size
    if cur:
        out.append(_Chunk(cur, nb))
    return out


class RayMapper:
    """The scan's map step on Ray (a :data:`registry.scan.Mapper`).

    ``address``: ``"auto"`` (the running cluster, or ``RAY_ADDRESS``), ``ray://…`` or ``host:port`` of a
    cluster, or ``"local"`` (a throwaway single-machine Ray with ``local_cpus`` CPUs, ended afterwards).
    When Ray is initialised already in this process (tests, notebooks), that connection is used as is.
    """

    def __init__(
        self,
        address: str = "auto",
        *,
        max_tasks: int = 0,
        max_bytes: int = 8 << 30,
        chunk_files: int = 64,
        chunk_bytes: int = 256 << 20,
        local_cpus: int | None = None,
        on_progress: Callable[[RayProgress], None] | None = None,
        progress_every_s: float = 2.0,
        on_retry: Callable[[str, str], None] | None = None,
        task_delay_s: float = 0.0,
        crash_names: tuple[str, ...] = (),
    ) -> None:
        self.address = address
        self.max_tasks = max_tasks
        self.max_bytes = max_bytes
        self.chunk_files = chunk_files
        self.chunk_bytes = chunk_bytes
        self.local_cpus = local_cpus
        self.on_progress = on_progress
        self.progress_every_s = progress_every_s
        self.on_retry = on_retry
        self.task_delay_s = task_delay_s
        self.crash_names = crash_names
        self.progress = RayProgress()
        #: the most tasks and bytes that were in the window at once (tests check the bounds)
        self.peak_tasks = 0
        self.peak_bytes = 0
        #: tasks submitted to each node and not yet answered (placement's load; tests read it)
        self.in_flight: dict[str, int] = {}

    def __call__(self, items: list[ScanItem], known: set[str], rehash: bool) -> Iterator[Analysed]:
        if not items:
            return
        import ray

        owned = connect(self.address, self.local_cpus)
        try:
            yield from self._run(ray, items, known, rehash)
        finally:
            if owned:
                ray.shutdown()

    def _alive_nodes(self, ray: Any) -> list[str]:
        return [n["NodeID"] for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]

    def _visibility(self, ray: Any, nodes: list[str], dirs: list[bytes]) -> dict[bytes, list[str]]:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        check = ray.remote(num_cpus=0, max_retries=0)(visible_dirs)
        refs = {
            n: check.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)).remote(dirs)
            for n in nodes
        }
        seen: dict[bytes, list[str]] = {d: [] for d in dirs}
        want = analyzer_versions()
        problems: list[str] = []
        for n, ref in refs.items():
            try:
                versions, answer = ray.get(ref, timeout=60)
            except Exception as e:  # noqa: BLE001 - a node that cannot answer is not used for placement
                problems.append(f"node {n[:12]}: {error_line(e)}")
                continue
            if versions != want:
                raise RegistryError(
                    f"node {n[:12]} runs other analyzers than this driver ({versions} against {want}): "
                    "install the same modelreg on every node"
                )
            for d, ok in zip(dirs, answer, strict=True):
                if ok:
                    seen[d].append(n)
        if problems and len(problems) == len(refs):
            # no node can run modelreg: say so once instead of recording a failure for every file
            raise RegistryError(
                f"no Ray node could run modelreg's check task ({problems[0]}): install modelreg on every node"
            )
        return seen

    def _run(self, ray: Any, items: list[ScanItem], known: set[str], rehash: bool) -> Iterator[Analysed]:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        t0 = time.monotonic()
        want = analyzer_versions()
        task_fn = ray.remote(num_cpus=1, max_retries=0)(analyse_chunk)
        known_ref = ray.put(known)
        known_key = f"{os.getpid()}-{known_ref.hex()}"
        nodes = self._alive_nodes(ray)
        dirs = sorted({os.fsencode(os.path.dirname(it.path)) for it in items})
        seen = self._visibility(ray, nodes, dirs)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        max_tasks = self.max_tasks if self.max_tasks > 0 else max(2, 2 * cpus)
        # chunks small enough that every CPU gets about four: a few large files are not one task
        n_bytes = sum(it.st.st_size for it in items if it.st is not None)
        per = 4 * max(1, cpus)
        todo = deque(
            chunks(
                items,
                max(1, min(self.chunk_files, -(-len(items) // per))),
                max(1, min(self.chunk_bytes, n_bytes // per)),
            )
        )
        window: deque[_Chunk] = deque()
        in_window_bytes = 0
        running: dict[Any, _Task] = {}
        load: dict[str, int] = {n: 0 for n in nodes}
        self.in_flight = load
        p = self.progress = RayProgress()  # per call (audit scans its plain files, then the HF cache)
        p.files_total = len(items)
        p.bytes_total = sum(it.st.st_size for it in items if it.st is not None)
        p.nodes = len(nodes)
        last_report = 0.0

        def pick(chunk: _Chunk, exclude: str | None) -> str | None:
            cands = None
            for it in chunk.items:
                s = set(seen.get(os.fsencode(os.path.dirname(it.path)), []))
                cands = s if cands is None else cands & s
            alive = [n for n in (cands or set(load)) if n in load and n != exclude]
            if not alive:
                alive = [n for n in load if n != exclude] or list(load)
            return min(alive, key=lambda n: (load[n], n)) if alive else None

        def submit(chunk: _Chunk, idx: list[int], attempt: int, exclude: str | None = None) -> None:
            node = pick(chunk, exclude)
            opts: dict[str, Any] = {}
            if node is not None:
                opts["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=True)
                load[node] += 1
            ref = task_fn.options(**opts).remote(
                [known_ref], known_key, [_spec(chunk.items[i]) for i in idx], rehash, self.task_delay_s, self.crash_names
            )
            running[ref] = _Task(chunk, idx, attempt, node)

        def failed(task: _Task, err: BaseException) -> None:
            nonlocal nodes
            text = error_line(err)
            if task.attempt == 1:
                # the node may be gone: refresh the alive set, then one task per file elsewhere
                alive = set(self._alive_nodes(ray))
                for n in list(load):
                    if n not in alive:
                        del load[n]
                for n in alive:
                    load.setdefault(n, 0)
                for i in task.idx:
                    p.retried_files += 1
                    if self.on_retry is not None:
                        self.on_retry(task.chunk.items[i].path, text)
                    submit(task.chunk, [i], 2, exclude=task.node if len(load) > 1 else None)
                return
            for i in task.idx:
                it = task.chunk.items[i]
                assert it.st is not None
                p.failed_files += 1
                task.chunk.results[i] = Analysed(
                    it.path, it.st.st_size, it.st.st_mtime_ns, it.st.st_ino, it.st.st_dev, None, None,
                    [finding(R_TASK_FAILED.id, f"{it.path}: analysis failed twice on the Ray cluster ({text})", error=text)],
                    error=text,
                )

        try:
            while todo or window:
                # fill the window
                while todo and len(window) < max_tasks and (
                    not window or in_window_bytes + todo[0].nbytes <= self.max_bytes
                ):
                    chunk = todo.popleft()
                    window.append(chunk)
                    in_window_bytes += chunk.nbytes
                    submit(chunk, list(range(len(chunk.items))), 1)
                self.peak_tasks = max(self.peak_tasks, len(window))
                self.peak_bytes = max(self.peak_bytes, in_window_bytes)
                # hand finished chunks to the writer, in order
                while window and window[0].done:
                    chunk = window.popleft()
                    in_window_bytes -= chunk.nbytes
                    for i in range(len(chunk.items)):
                        a = chunk.results[i]
                        p.files_done += 1
                        p.bytes_done += chunk.items[i].st.st_size if chunk.items[i].st is not None else 0  # type: ignore[union-attr]
                        yield a
                    p.elapsed_s = time.monotonic() - t0
                    if self.on_progress is not None and (p.elapsed_s - last_report >= self.progress_every_s):
                        last_report = p.elapsed_s
                        self.on_progress(p)
                if not running:
                    # every task has answered, so every chunk of the window was handed on above
                    assert not window, "a chunk without a task"
                    continue
                ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
                for ref in ready:
                    task = running.pop(ref)
                    if task.node in load:
                        load[task.node] -= 1
                    try:
                        batch = ray.get(ref)
                    except Exception as e:  # worker crash, node death, lost object, an error in the task
                        failed(task, e)
                        continue
                    meta = batch_meta(batch)
                    if meta.get("analyzers") != want:
                        raise RegistryError(
                            f"node {meta.get('node')} runs other analyzers than this driver "
                            f"({meta.get('analyzers')} against {want}): install the same modelreg on every node"
                        )
                    p.by_node[meta.get("node_id", "")] = p.by_node.get(meta.get("node_id", ""), 0) + batch.num_rows
                    for i, a in zip(task.idx, from_arrow(batch), strict=True):
                        task.chunk.results[i] = a
        finally:
            for ref in running:  # the scan stopped early (an error, Ctrl-C): stop its tasks too
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
        p.elapsed_s = time.monotonic() - t0
        if self.on_progress is not None:
            self.on_progress(p)


# ---------------------------------------------------------------------------------------------------
# probes as Ray tasks
# ---------------------------------------------------------------------------------------------------


def map_grouped(
    fn: Callable[..., Any],
    jobs: Sequence[tuple[str, tuple[Any, ...]]],
    *,
    address: str = "auto",
    num_gpus: float = 1.0,
    num_cpus: float = 1.0,
    local_cpus: int | None = None,
) -> Iterator[tuple[int, Any, BaseException | None]]:
    """Run ``fn(*args)`` for every ``(group, args)`` of ``jobs`` as a Ray task reserving ``num_gpus`` GPUs
    and ``num_cpus`` CPUs; yield ``(job index, result, None)`` or ``(job index, None, error)`` as each
    finishes. The first job of each group runs alone; the rest of that group start once it has succeeded
    (after a failure, the next one alone)
    (``probe --ray``: the first probe on a base fills its LoRA-off grid in the shared sample store, every
    later probe on that base reads it from there instead of generating it again). Groups run in
    parallel. A task lost with its worker or node is retried once by Ray (``max_retries=1``); an error
    inside ``fn`` is not retried."""
    import ray

    owned = connect(address, local_cpus)
    try:
        task = ray.remote(num_gpus=num_gpus, num_cpus=num_cpus, max_retries=1)(fn)
        waiting: dict[str, list[int]] = {}
        running: dict[Any, tuple[int, str]] = {}
        for i, (group, _) in enumerate(jobs):
            waiting.setdefault(group, []).append(i)

        def start(i: int) -> None:
            running[task.remote(*jobs[i][1])] = (i, jobs[i][0])

        for idxs in waiting.values():
            start(idxs.pop(0))
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                i, group = running.pop(ref)
                try:
                    out, err = ray.get(ref), None
                except Exception as e:  # noqa: BLE001 - reported per job; the others go on
                    out, err = None, e
                rest = waiting.get(group, [])
                # after a success the rest of the group in parallel; after a failure the next one alone
                for j in (rest[:] if err is None else rest[:1]):
                    rest.remove(j)
                    start(j)
                yield i, out, err
    finally:
        if owned:
            ray.shutdown()
