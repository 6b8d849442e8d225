"""A corpus of hostile files (and a few benign look-alikes) for the scanner, built without torch.

Every file here is WRITTEN only: hand-assembled opcodes (:class:`tests.pickle_builders.P`), ``pickle.dumps``
of objects whose ``__reduce__`` names a callable, and zips / legacy files laid out byte by byte the way
``torch.save`` lays them out. Nothing is ever loaded. Each case names the bypass class it reproduces
(payload gadgets from picklescan / modelscan advisories, container and zip tricks, polyglots, compression
wrappers) and the verdicts that catch it.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import pickle  # writing only: nothing here loads a pickle
import struct
import subprocess
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.builders import safetensors_bytes
from tests.pickle_builders import (
    TORCH_MAGIC,
    P,
    Reduce,
    ZipEntry,
    legacy_torch_bytes,
    npy_object_bytes,
    safetensors_pickle_polyglot,
    safetensors_with_length,
    state_dict_from_arrays,
    state_dict_pickle,
    torch_zip_bytes,
    zip_bytes,
)

ARRAYS = {
    "model.diffusion_model.input_blocks.0.0.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2),
    "model.diffusion_model.input_blocks.0.0.bias": np.array([0.5, -1.5], dtype=np.float16),
    "first_stage_model.scale": np.array(7, dtype=np.int64),
}
CMD = "touch /tmp/modelreg-hostile-canary"
CAUGHT = frozenset({"dangerous"})
#: a container the scanner cannot open is never clean: unscannable is the right verdict there
UNOPENABLE = frozenset({"unscannable", "dangerous"})


@dataclass(frozen=True)
class Hostile:
    name: str
    data: bytes
    what: str
    allowed: frozenset[str] = CAUGHT


def call(module: str, name: str, *args: object, proto: int | None = 2) -> bytes:
    """``module.name(*args)`` by GLOBAL + REDUCE."""
    return P(proto).call(module, name, *args).stop()


def payload_ops(module: str = "posix", name: str = "system", arg: str = CMD) -> bytes:
    """The opcodes of ``module.name(arg)`` without PROTO or STOP (for injection into another pickle)."""
    return bytes(P(None).call(module, name, arg).b)


def inject_after_proto(pkl: bytes, ops: bytes) -> bytes:
    """``fickling --inject``-style: run the payload first, pop its result, then the original stream."""
    assert pkl[:1] == b"\x80"
    return pkl[:2] + ops + b"0" + pkl[2:]


def inject_before_stop(pkl: bytes, ops: bytes) -> bytes:
    assert pkl[-1:] == b"."
    return pkl[:-1] + ops + b"0."


# -- payload gadgets: (module, name) pairs reached by GLOBAL --------------------------------------------

GADGETS: list[tuple[str, str, str]] = [
    # processes and code
    ("os", "system", "shell command"), ("posix", "system", "os.system under its real module name"),
    ("nt", "system", "the Windows spelling"), ("os", "popen", ""), ("os", "execv", ""), ("os", "spawnlp", ""),
    ("os", "fork", ""), ("posix", "posix_spawn", ""), ("subprocess", "Popen", ""), ("subprocess", "call", ""),
    ("subprocess", "run", ""), ("subprocess", "check_output", ""), ("subprocess", "getoutput", ""),
    ("_posixsubprocess", "fork_exec", ""), ("pty", "spawn", ""), ("commands", "getoutput", "Python 2 name"),
    ("builtins", "exec", ""), ("builtins", "eval", ""), ("builtins", "compile", ""), ("builtins", "__import__", ""),
    ("builtins", "open", ""), ("builtins", "breakpoint", ""), ("builtins", "input", ""), ("builtins", "vars", ""),
    ("builtins", "globals", ""), ("builtins", "setattr", ""), ("__builtin__", "eval", "protocol-2 spelling"),
    ("__builtin__", "execfile", "Python 2"), ("__builtins__", "exec", ""), ("builtins", "dict.get", "attribute of a builtin"),
    ("importlib", "import_module", ""), ("importlib", "__import__", ""), ("importlib.util", "find_spec", ""),
    ("importlib.machinery", "SourceFileLoader", ""), ("imp", "load_source", ""), ("pkgutil", "resolve_name", ""),
    ("runpy", "run_path", ""), ("runpy", "run_module", ""), ("runpy", "_run_code", ""),
    ("code", "InteractiveInterpreter", ""), ("code", "InteractiveConsole", ""), ("code", "interact", ""),
    ("code", "InteractiveInterpreter.runcode", "picklescan entry"), ("codeop", "compile_command", ""),
    ("marshal", "loads", "code objects from bytes"), ("types", "FunctionType", ""), ("types", "CodeType", ""),
    ("pickle", "loads", "nested pickle"), ("_pickle", "loads", ""), ("cPickle", "loads", ""),
    ("pickle", "Unpickler", ""), ("copyreg", "add_extension", ""), ("ctypes", "CDLL", ""), ("ctypes", "cdll", ""),
    ("_ctypes", "dlopen", ""), ("sys", "modules", ""), ("sys", "exit", ""), ("gc", "get_objects", ""),
    ("operator", "attrgetter", ""), ("operator", "methodcaller", ""), ("operator", "itemgetter", ""),
    ("_operator", "attrgetter", ""), ("functools", "reduce", ""), ("_functools", "partial", "C spelling"),
    ("threading", "Thread", ""), ("_thread", "start_new_thread", ""), ("multiprocessing", "Process", ""),
    ("signal", "signal", ""), ("atexit", "register", ""), ("collections", "namedtuple", "exec inside"),
    ("dataclasses", "_create_fn", "exec inside"), ("typing", "get_type_hints", "eval of string annotations"),
    # profilers, debuggers, REPL helpers (picklescan GHSA advisories)
    ("cProfile", "run", ""), ("cProfile", "runctx", ""), ("profile", "run", ""), ("trace", "Trace.runctx", ""),
    ("timeit", "timeit", ""), ("pdb", "run", ""), ("bdb", "Bdb.run", ""), ("doctest", "debug_script", ""),
    ("idlelib.run", "Executive.runcode", ""), ("idlelib.pyshell", "ModifiedInterpreter.runcommand", ""),
    ("idlelib.autocomplete", "AutoComplete.get_entity", ""), ("idlelib.calltip", "get_entity", ""),
    ("lib2to3.pgen2.pgen", "ParserGenerator.make_label", ""), ("lib2to3.pgen2.grammar", "Grammar.loads", ""),
    ("pydoc", "pipepager", ""), ("ensurepip", "_run_pip", ""), ("pip", "main", "CVE-2025-1716"),
    ("pip._internal.cli.main", "main", ""), ("venv", "create", ""), ("setuptools.sandbox", "run_setup", ""),
    ("distutils.file_util", "write_file", ""), ("asyncio.unix_events", "_UnixSubprocessTransport._start", "CVE-2025-10157"),
    ("asyncio.subprocess", "create_subprocess_shell", ""), ("asyncio", "create_subprocess_exec", ""),
    ("tkinter", "Tcl", "Tcl eval"), ("antigravity", "fly", "import side effect"), ("turtle", "Screen", ""),
    # files and network
    ("io", "open", ""), ("_io", "FileIO", ""), ("codecs", "open", ""), ("shutil", "rmtree", ""),
    ("shutil", "copyfile", ""), ("tempfile", "mkstemp", ""), ("pathlib", "Path.write_text", ""),
    ("pathlib", "Path.unlink", ""), ("zipfile", "ZipFile.extractall", ""), ("tarfile", "open", ""),
    ("logging", "FileHandler", ""), ("logging.config", "listen", ""), ("uuid", "_get_command_stdout", ""),
    ("platform", "popen", ""), ("webbrowser", "open", ""), ("socket", "create_connection", ""),
    ("socket", "socket", ""), ("ssl", "get_server_certificate", ""), ("urllib.request", "urlopen", ""),
    ("urllib.request", "urlretrieve", ""), ("http.client", "HTTPSConnection", ""), ("requests", "get", ""),
    ("requests.api", "post", ""), ("httpx", "get", ""), ("aiohttp", "ClientSession", ""), ("smtplib", "SMTP", ""),
    ("ftplib", "FTP", ""), ("telnetlib", "Telnet", ""), ("xmlrpc.client", "ServerProxy", ""),
    ("sqlite3", "connect", ""), ("mmap", "mmap", ""), ("fcntl", "ioctl", ""),
    # numpy, pandas and the pickle-adjacent ecosystem
    ("numpy.testing._private.utils", "runstring", "exec"), ("numpy.f2py.crackfortran", "getlincoef", "eval"),
    ("numpy.f2py.crackfortran", "_eval_length", ""), ("numpy", "load", "nested pickle"), ("numpy", "fromfile", ""),
    ("numpy", "memmap", ""), ("numpy.lib.npyio", "load", ""), ("numpy.lib._npyio_impl", "load", "numpy 2 path"),
    ("numpy.lib.format", "read_array", ""), ("numpy.ctypeslib", "load_library", ""), ("numpy.core.records", "fromfile", ""),
    ("numpy", "__builtins__", "dunder of a safe module"), ("numpy", "core._internal.sys.modules", "dotted into sys"),
    ("pandas", "read_pickle", ""), ("pandas", "eval", ""), ("pandas.io.pickle", "read_pickle", ""),
    ("joblib", "load", ""), ("dill", "loads", ""), ("dill._dill", "_create_code", ""), ("cloudpickle", "loads", ""),
    ("cloudpickle.cloudpickle", "_make_function", ""), ("yaml", "unsafe_load", ""), ("jinja2", "Template", ""),
    ("sympy", "sympify", "eval"), ("IPython", "get_ipython", ""), ("keras.models", "load_model", ""),
    ("tensorflow.io", "write_file", ""), ("huggingface_hub", "hf_hub_download", ""),
    # torch gadgets
    ("torch", "load", "nested torch.load"), ("torch.serialization", "load", ""), ("torch.serialization", "_load", ""),
    ("torch.serialization", "os.system", "attribute chain from a torch module"), ("torch", "save", ""),
    ("torch", "from_file", ""), ("torch.storage", "_load_from_bytes", ""), ("torch.storage", "UntypedStorage.from_file", ""),
    ("torch.hub", "load", ""), ("torch.hub", "download_url_to_file", ""), ("torch.hub", "load_state_dict_from_url", ""),
    ("torch.utils.model_zoo", "load_url", ""), ("torch.utils.cpp_extension", "load_inline", ""),
    ("torch.utils.cpp_extension", "load", ""), ("torch.jit", "load", ""), ("torch.jit._serialization", "load", ""),
    ("torch.jit.unsupported_tensor_ops", "execWrapper", ""), ("torch.fx.graph_module", "_exec_with_source", ""),
    ("torch.fx.experimental.symbolic_shapes", "ShapeEnv.evaluate_guards_expression", ""),
    ("torch._dynamo.guards", "GuardBuilder.get", ""), ("torch._dynamo.eval_frame", "optimize", ""),
    ("torch._inductor.codecache", "compile_file", ""), ("torch._inductor.codecache", "PyCodeCache.load", ""),
    ("torch.utils._config_module", "ConfigModule.load_config", ""), ("torch.utils.bottleneck.__main__", "run_autograd_prof", ""),
    ("torch.utils.collect_env", "run", ""), ("torch.utils.data.datapipes.utils.decoder", "basichandlers", ""),
    ("torch._utils", "_import_dotted_name", ""), ("torch.ops", "load_library", ""), ("torch.ops.aten", "save", ""),
    ("torch._ops", "ops.load_library", ""), ("torch.classes", "load_library", ""), ("torch.package", "PackageImporter", ""),
    ("torch.multiprocessing", "spawn", ""), ("torch.distributed.run", "main", ""), ("torch.distributed", "init_process_group", ""),
    ("torch.distributed.rpc", "rpc_sync", ""), ("torch.cuda.jiterator", "_create_jit_fn", ""),
    ("torch.cuda.memory", "_dump_snapshot", ""), ("torch.export", "load", ""), ("torch", "compile", ""),
    ("torch.testing._internal.common_utils", "shell", ""), ("torch.onnx", "export", ""),
    ("torch.nn.modules.module", "Module.load_state_dict", ""), ("collections", "OrderedDict.__init__.__globals__", "dunder walk"),
]  # fmt: skip


def _gadget_cases() -> list[Hostile]:
    from registry.files.pickle_policy import LOADER_GADGETS

    out = []
    for module, name, why in GADGETS:
        out.append(Hostile(f"gadget_{module}.{name}.pkl", call(module, name, CMD), f"GLOBAL {module}.{name}: {why}".rstrip(": ")))
    # second-stage loaders: deserializers, importers, executors (docs/security.md, "Loader gadgets")
    for g in LOADER_GADGETS:
        name = g.name or g.example
        out.append(Hostile(f"loader_{g.module}.{name}.pkl", call(g.module, name, CMD), f"{g.does}: {g.source}"))
    return out


def _real_pickler_cases() -> list[Hostile]:
    """What ``pickle.dumps`` writes for classic ``__reduce__`` payloads, at every protocol."""
    import builtins

    out = []
    for proto in range(6):
        out.append(Hostile(f"reduce_os_system_p{proto}.pkl", pickle.dumps(Reduce(os.system, CMD), protocol=proto),
                           f"__reduce__ -> os.system, protocol {proto}"))  # fmt: skip
        out.append(Hostile(f"reduce_popen_p{proto}.pkl", pickle.dumps(Reduce(subprocess.Popen, ["sh", "-c", CMD]), protocol=proto),
                           f"__reduce__ -> subprocess.Popen, protocol {proto}"))  # fmt: skip
        out.append(Hostile(f"reduce_exec_p{proto}.pkl", pickle.dumps(Reduce(builtins.exec, f"import os;os.system({CMD!r})"), protocol=proto),
                           f"__reduce__ -> builtins.exec, protocol {proto}"))  # fmt: skip
    out.append(Hostile("reduce_eval_p4.pkl", pickle.dumps(Reduce(builtins.eval, "1+1"), protocol=4), "builtins.eval"))
    import functools

    out.append(Hostile("reduce_partial_system.pkl", pickle.dumps(Reduce(functools.partial(os.system, CMD)), protocol=2),
                       "functools.partial(os.system, cmd)()"))  # fmt: skip
    mod = bytes(P(None).call("importlib", "import_module", "os").b)
    p = P(2).glob("operator", "methodcaller").mark().ustr("system").ustr(CMD).tuple().reduce().mark().raw(mod)
    out.append(Hostile("methodcaller_system.pkl", p.tuple().reduce().stop(), "operator.methodcaller('system', cmd)(os)"))
    p = P(2).glob("operator", "attrgetter").mark().ustr("system").tuple().reduce().mark().raw(mod).tuple().reduce()
    out.append(Hostile("attrgetter_system.pkl", p.mark().ustr(CMD).tuple().reduce().stop(), "operator.attrgetter('system')(os)(cmd)"))
    out.append(Hostile("nested_pickle_loads.pkl", pickle.dumps(Reduce(pickle.loads, pickle.dumps(Reduce(os.system, CMD))), protocol=2),
                       "pickle.loads of a nested payload"))  # fmt: skip
    return out


def _structural_cases() -> list[Hostile]:
    """Payloads that reach code without naming it in one GLOBAL."""
    out: list[Hostile] = []

    def add(name: str, data: bytes, what: str, allowed: frozenset[str] = CAUGHT) -> None:
        out.append(Hostile(name, data, what, allowed))

    # getattr chains from innocent-looking names
    p = P(2).glob("builtins", "getattr").mark().glob("builtins", "getattr").mark().glob("torch", "serialization")
    add("getattr_chain_torch_os.pkl", p.ustr("os").tuple().reduce().ustr("system").tuple().reduce().mark().ustr(CMD).tuple().reduce().stop(),
        "getattr(getattr(torch.serialization, 'os'), 'system')(cmd)")  # fmt: skip
    p = P(2).glob("builtins", "getattr").mark().glob("importlib", "import_module").mark().ustr("os").tuple().reduce()
    add("getattr_import_module.pkl", p.ustr("system").tuple().reduce().mark().ustr(CMD).tuple().reduce().stop(),
        "getattr(importlib.import_module('os'), 'system')(cmd)")  # fmt: skip
    p = P(2).glob("builtins", "getattr").mark().glob("builtins", "__import__").mark().ustr("os").tuple().reduce()
    add("getattr_dunder_import.pkl", p.ustr("system").tuple().reduce().mark().ustr(CMD).tuple().reduce().stop(),
        "getattr(__import__('os'), 'system')(cmd)")  # fmt: skip
    # a plain-looking fetch whose value is then called
    p = P(2).glob("builtins", "getattr").mark().glob("collections", "OrderedDict").ustr("fromkeys").tuple().reduce()
    add("getattr_fetch_then_call.pkl", p.mark().ustr("ab").tuple().reduce().stop(),
        "getattr(OrderedDict, 'fromkeys') is stored-shaped, but then called")  # fmt: skip
    p = P(2).glob("builtins", "getattr").mark().glob("numpy.core.multiarray", "_reconstruct").mark()
    p.glob("numpy", "ndarray").mark().int(0).tuple().bytes_(b"b").tuple().reduce().ustr("tofile").tuple().reduce()
    add("getattr_ndarray_tofile.pkl", p.mark().ustr("/tmp/x").tuple().reduce().stop(),
        "getattr(ndarray instance, 'tofile')(path): a safe class's file-writing method")  # fmt: skip
    # getattr handed to a function that calls it: torch._tensor._rebuild_from_type_v2(func, type, args, state)
    p = P(2).glob("torch._tensor", "_rebuild_from_type_v2").mark().glob("builtins", "getattr").glob("torch", "Tensor")
    p.mark().glob("torch", "serialization").ustr("os").tuple().none().tuple().reduce().stop()
    add("rebuild_from_type_getattr.pkl", bytes(p.b), "_rebuild_from_type_v2 calls its first argument: getattr")
    p = P(2).glob("torch._tensor", "_rebuild_from_type_v2").mark().glob("posix", "system").glob("torch", "Tensor")
    add("rebuild_from_type_system.pkl", p.mark().ustr(CMD).tuple().none().tuple().reduce().stop(),
        "_rebuild_from_type_v2(posix.system, Tensor, (cmd,), None)")  # fmt: skip
    p = P(2).glob("torch._tensor", "_rebuild_from_type_v2").mark()
    p.glob("builtins", "getattr").mark().glob("collections", "OrderedDict").ustr("fromkeys").tuple().reduce()
    add("rebuild_from_type_fetched.pkl", p.glob("torch", "Tensor").mark().ustr("ab").tuple().none().tuple().reduce().stop(),
        "a fetched method handed to _rebuild_from_type_v2, which calls it")  # fmt: skip
    add("getattr_three_args.pkl", P(2).glob("builtins", "getattr").mark().glob("torch", "nn").ustr("x").none().tuple().reduce().stop(),
        "getattr with a default")  # fmt: skip
    add("getattr_inst.pkl", b"(ctorch\nnn\nS'modules'\nibuiltins\ngetattr\n.", "getattr called by INST")
    add("getattr_fetch_os_name.pkl", P(2).glob("builtins", "getattr").mark().glob("torch", "serialization").ustr("os").tuple().reduce().stop(),
        "getattr(torch.serialization, 'os'): fetches a module")  # fmt: skip
    # modelscan issue 89: dict.get on numpy.__builtins__, and BUILD planting sys.modules on numpy.prod
    p = P(5).glob("builtins", "dict.get").glob("numpy", "__builtins__").raw(b"Vexec\n").tuple_n(2).reduce()
    add("modelscan89_builtins_dict_get.pkl", p.raw(b"V__import__('os').system('id')\n").tuple_n(1).reduce().stop(),
        "builtins.dict.get(numpy.__builtins__, 'exec')(code)")  # fmt: skip
    p = P(5).glob("numpy", "prod").none().glob("numpy", "core._internal.sys.modules").tuple_n(2).build().pop()
    add("modelscan89_build_sys_modules.pkl", p.glob("numpy", "prod.os.system").raw(b"Vid\n").tuple_n(1).reduce().stop(),
        "BUILD plants sys.modules on numpy.prod, then numpy.prod.os.system")  # fmt: skip
    # operands of STACK_GLOBAL that only a call can produce
    p = P(4).glob("_codecs", "decode").mark().bytes_(b"os").ustr("ascii").tuple().reduce().str("system").raw(b"\x93")
    add("stack_global_from_call.pkl", p.mark().ustr(CMD).tuple().reduce().stop(), "STACK_GLOBAL module = _codecs.decode(b'os')")
    add("string_fed_stack_global.pkl", P(4).string0("os").string0("system").raw(b"\x93").mark().ustr(CMD).tuple().reduce().stop(),
        "protocol-0 STRING operands of STACK_GLOBAL")  # fmt: skip
    add("binstring_stack_global.pkl", P(4).binstring("posix").binstring("system").raw(b"\x93").mark().ustr(CMD).tuple().reduce().stop(),
        "SHORT_BINSTRING operands")  # fmt: skip
    # memo type confusion (picklescan issue 14): BINPUT and MEMOIZE mixed so a naive memo lies
    p = P(4).binstring("os").put(0).binstring("system").put(1).str("torch._utils").memoize().str("_rebuild_tensor_v2").memoize()
    add("memo_confusion.pkl", p.get(0).get(1).raw(b"\x93").mark().ustr(CMD).tuple().reduce().stop(),
        "MEMOIZE after BINPUT: the memo holds os/system, not torch._utils")  # fmt: skip
    p = P(4).str("posix").memoize().str("system").memoize().pop().pop()
    add("memo_after_pop.pkl", p.get(0).get(1).raw(b"\x93").mark().ustr(CMD).tuple().reduce().stop(), "memoised then popped")
    # opcodes other than GLOBAL/REDUCE
    add("inst_opcode.pkl", b"(S'" + CMD.encode() + b"'\nios\nsystem\n.", "protocol-0 INST")
    add("obj_opcode.pkl", b"(cos\nsystem\nS'" + CMD.encode() + b"'\no.", "protocol-1 OBJ")
    p = P(4).glob("subprocess", "Popen").mark().ustr("sh").tuple().empty_dict().ustr("shell").true().setitem()
    add("newobj_ex.pkl", p.raw(b"\x92").stop(), "NEWOBJ_EX with keyword arguments")
    add("ext1_code.pkl", P(2).raw(b"\x82\x01").mark().ustr(CMD).tuple().reduce().stop(), "EXT1: a name from the copyreg registry")
    add("ext4_code.pkl", P(2).raw(b"\x84\x00\x01\x00\x00").mark().ustr(CMD).tuple().reduce().stop(), "EXT4")
    p = P(2).glob("copyreg", "_reconstructor").mark().glob("subprocess", "Popen").glob("builtins", "object").none()
    add("copyreg_reconstructor.pkl", p.tuple().reduce().stop(), "copyreg._reconstructor(subprocess.Popen, object, None)")
    # streams that break after the payload, or carry it in a later pickle
    add("nullifai_broken_after.pkl", P(2).call("posix", "system", CMD).raw(b"\x00garbage").stop(),
        "payload, then a byte no unpickler accepts")  # fmt: skip
    add("second_pickle.pkl", pickle.dumps({"a": 1}, protocol=2) + call("posix", "system", CMD), "payload in a second pickle")
    big = state_dict_pickle(*state_dict_from_arrays({f"w{i}": np.zeros(2, np.float32) for i in range(3000)}))
    add("payload_at_the_end_of_a_big_stream.pkl", inject_before_stop(big, payload_ops()), "payload after 3000 tensors")
    add("proto0_text_payload.txt", b"cos\nsystem\n(S'" + CMD.encode() + b"'\ntR.", "a protocol-0 pickle is printable text")
    add("proto1_marker.pkl", b"\x80\x01cos\nsystem\n(S'id'\ntR.", "PROTO 1")
    add("frame_first.pkl", b"\x95" + struct.pack("<Q", 24) + b"cos\nsystem\n(S'id'\ntR.", "FRAME before PROTO")
    add("protocol5_buffers.pkl", P(5).raw(b"\x97").pop().call("posix", "system", CMD).stop(), "NEXT_BUFFER, then the payload")
    return out


def _torch_zip_cases() -> list[Hostile]:
    refs, storages = state_dict_from_arrays(ARRAYS)
    benign = state_dict_pickle(refs, storages)
    ops = payload_ops()
    out: list[Hostile] = []

    def z(name: str, what: str, **kw: object) -> None:
        out.append(Hostile(name, torch_zip_bytes(refs=refs, storages=storages, **kw), what))  # type: ignore[arg-type]

    z("zip_inject_after_proto.ckpt", "torch zip, payload injected at the start of data.pkl", data_pkl=inject_after_proto(benign, ops))
    z("zip_inject_before_stop.ckpt", "torch zip, payload injected before STOP", data_pkl=inject_before_stop(benign, ops))
    z("zip_payload_only.pt", "torch zip whose data.pkl is the payload", data_pkl=call("posix", "system", CMD))
    z("zip_lightning_wrapped.ckpt", "payload inside a Lightning-style dict",
      data_pkl=inject_before_stop(state_dict_pickle(refs, storages, wrap="state_dict", extra=[("global_step", 5)]), ops))  # fmt: skip
    z("zip_deflated_data_pkl.pt", "data.pkl deflate-compressed", data_pkl=inject_after_proto(benign, ops), pkl_entry={"method": 8})
    z("zip_encryption_flag.pt", "encryption flag on a plaintext data.pkl (CVE-2025-1945 class)",
      data_pkl=inject_after_proto(benign, ops), pkl_entry={"flags": 1})  # fmt: skip
    z("zip_bad_crc.pt", "CRC that does not match (CVE-2025-10156 class)", data_pkl=inject_after_proto(benign, ops),
      pkl_entry={"crc": 0xDEADBEEF})  # fmt: skip
    z("zip_local_name_mismatch.pt", "local header names another file (CVE-2025-1944 class)",
      data_pkl=inject_after_proto(benign, ops), pkl_entry={"local_name": "archive/version"})  # fmt: skip
    z("zip_extra_pkl_member.pt", "benign data.pkl, payload in another .pkl member", data_pkl=benign,
      extra_members=[ZipEntry("archive/extra.pkl", call("posix", "system", CMD))])  # fmt: skip
    z("zip_payload_in_serialization_id.pt", "payload in a plain-named member", data_pkl=benign,
      extra_members=[ZipEntry("archive/.data/serialization_id", call("posix", "system", CMD))])  # fmt: skip
    z("zip_payload_in_storage.pt", "payload hidden in a storage member", data_pkl=benign,
      extra_members=[ZipEntry("archive/data/99", call("posix", "system", CMD))])  # fmt: skip
    z("zip_payload_noext_member.pt", "payload in a member with no extension", data_pkl=benign,
      extra_members=[ZipEntry("archive/constants", call("builtins", "exec", "print(1)"))])  # fmt: skip
    z("zip_other_prefix.pt", "a second archive prefix with its own data.pkl", data_pkl=benign,
      extra_members=[ZipEntry("other/data.pkl", call("posix", "system", CMD))])  # fmt: skip
    # duplicate names: benign first, payload second (readers disagree on which one wins)
    entries = [ZipEntry("archive/data.pkl", benign), ZipEntry("archive/data.pkl", inject_after_proto(benign, ops)),
               ZipEntry("archive/byteorder", b"little")]  # fmt: skip
    out.append(Hostile("zip_duplicate_data_pkl.pt", zip_bytes(entries), "two members named data.pkl"))
    # central directory says stored, local header says deflate
    out.append(Hostile("zip_method_mismatch.pt", _method_mismatch(inject_after_proto(benign, ops)), "local/central method mismatch"))
    # zip64 records (Python's writer, forced)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf, zf.open("archive/data.pkl", "w", force_zip64=True) as fh:
        fh.write(inject_after_proto(benign, ops))
    out.append(Hostile("zip64_data_pkl.pt", buf.getvalue(), "zip64 extra fields"))
    # the truncation trick: central size cuts the stream after the payload
    pkl = inject_after_proto(benign, ops)
    cut = zip_bytes([ZipEntry("archive/data.pkl", pkl)])
    out.append(Hostile("zip_truncated_after_payload.pt", _shrink_member(cut, len(ops) + 10), "member size ends the stream just after the payload"))
    return out


def _method_mismatch(pkl: bytes) -> bytes:
    data = bytearray(zip_bytes([ZipEntry("archive/data.pkl", pkl), ZipEntry("archive/version", b"3\n")]))
    # local header of the first member: method field at offset 8
    struct.pack_into("<H", data, 8, 8)
    return bytes(data)


def _shrink_member(data: bytes, size: int) -> bytes:
    """Rewrite the first member's compressed/uncompressed sizes in both headers."""
    b = bytearray(data)
    struct.pack_into("<II", b, 18, size, size)
    cd = b.rfind(b"PK\x01\x02")
    struct.pack_into("<II", b, cd + 20, size, size)
    return bytes(b)


def _legacy_cases() -> list[Hostile]:
    refs, storages = state_dict_from_arrays(ARRAYS)
    ops = payload_ops()
    out = [
        Hostile("legacy_magic_payload.ckpt", legacy_torch_bytes(ARRAYS, magic_pickle=call("posix", "system", CMD)),
                "payload in the magic-number pickle"),  # fmt: skip
        Hostile("legacy_trailing_pickle.ckpt", legacy_torch_bytes(ARRAYS, trailing=call("posix", "system", CMD)),
                "a pickle after the last storage"),  # fmt: skip
    ]
    magic = pickle.dumps(TORCH_MAGIC, protocol=2)
    proto = pickle.dumps(1001, protocol=2)
    info = pickle.dumps({"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2)
    obj = state_dict_pickle(refs, storages, legacy=True)
    keys = pickle.dumps(list(storages), protocol=2)
    raw = b"".join(struct.pack("<Q", s.size) + s.tobytes() for s in storages.values())
    out.append(Hostile("legacy_object_payload.ckpt", magic + proto + info + inject_after_proto(obj, ops) + keys + raw,
                       "payload injected into the object pickle"))  # fmt: skip
    out.append(Hostile("legacy_sysinfo_payload.ckpt", magic + proto + inject_after_proto(info, ops) + obj + keys + raw,
                       "payload in the system-info pickle"))  # fmt: skip
    out.append(Hostile("legacy_keys_payload.ckpt", magic + proto + info + obj + inject_after_proto(keys, ops) + raw,
                       "payload in the storage-keys pickle"))  # fmt: skip
    return out


def _numpy_cases() -> list[Hostile]:
    evil = call("posix", "system", CMD)
    out = [Hostile("object_array.npy", npy_object_bytes(evil), "numpy object array (allow_pickle)")]
    hdr = repr({"descr": "|O", "fortran_order": False, "shape": (1,)}).encode()
    hdr += b" " * (-(12 + len(hdr) + 1) % 64) + b"\n"
    out.append(Hostile("object_array_v2.npy", b"\x93NUMPY\x02\x00" + struct.pack("<I", len(hdr)) + hdr + evil, "npy format 2.0 header"))
    for name, descr in [("object_descr_word.npy", "'object'"), ("object_field.npy", "[('a', '<f4'), ('b', '|O')]")]:
        h = ("{'descr': " + descr + ", 'fortran_order': False, 'shape': (1,)}").encode()
        h += b" " * (-(10 + len(h) + 1) % 64) + b"\n"
        out.append(Hostile(name, b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + evil, f"npy descr {descr}"))
    out.append(Hostile("arrays.npz", zip_bytes([ZipEntry("a.npy", npy_object_bytes(evil), method=8)]), "npz with a deflated object array"))
    buf = io.BytesIO()
    np.save(buf, np.arange(3))
    out.append(Hostile("mixed.npz", zip_bytes([ZipEntry("ok.npy", buf.getvalue()), ZipEntry("x.npy", npy_object_bytes(evil))]),
                       "npz: a plain array, then an object array"))  # fmt: skip
    return out


def _wrapper_cases() -> list[Hostile]:
    evil = call("posix", "system", CMD)
    tzip = torch_zip_bytes(ARRAYS, data_pkl=inject_after_proto(state_dict_pickle(*state_dict_from_arrays(ARRAYS)), payload_ops()))
    out = [
        Hostile("evil.pkl.gz", gzip.compress(evil), "gzip"),
        Hostile("evil_torch.pt.gz", gzip.compress(tzip), "gzip of a torch zip"),
        Hostile("evil_multimember.gz", gzip.compress(pickle.dumps([1], 2)[:-1]) + gzip.compress(b"0" + evil[2:]),
                "a pickle split over two gzip members (gzip.open joins them)"),  # fmt: skip
        Hostile("evil.joblib", zlib.compress(evil), "zlib stream (joblib compress=True)"),
        Hostile("evil.pkl.bz2", bz2.compress(evil), "bzip2"),
        Hostile("evil.pkl.xz", lzma.compress(evil), "xz"),
        Hostile("evil.pkl.lzma", lzma.compress(evil, format=lzma.FORMAT_ALONE), "legacy lzma (joblib .lzma)"),
        Hostile("evil_nested.zip", zip_bytes([ZipEntry("bundle/model.pt", tzip)]), "torch zip inside a zip"),
        Hostile("evil_deep.zip", zip_bytes([ZipEntry("a.zip", zip_bytes([ZipEntry("b.zip", zip_bytes([ZipEntry("m.pkl", evil)]))]))]),
                "zip in zip in zip"),  # fmt: skip
        Hostile("evil.tar", _tar({"model/data.pkl": evil}), "tar"),
        Hostile("evil.tar.gz", gzip.compress(_tar({"model.pt": tzip})), "torch zip in a tar.gz"),
        Hostile("evil_legacy_tar.pt", _tar({"storages": pickle.dumps(0, 2), "tensors": pickle.dumps(0, 2), "pickle": evil}),
                "the pre-0.4 tar layout of torch.save"),  # fmt: skip
        Hostile("evil.zst", b"\x28\xb5\x2f\xfd" + os.urandom(64), "zstd frame the scanner cannot open", UNOPENABLE),
    ]
    try:
        import py7zr
    except ImportError:
        return out
    for name, members, what, allowed in [
        ("evil.7z", {"model.pkl": evil}, "7z", CAUGHT),
        ("evil_torch.7z", {"model.pt": tzip}, "torch zip inside 7z", CAUGHT),
        ("evil_encrypted.7z", {"model.pkl": evil}, "password-protected 7z", UNOPENABLE),
    ]:
        buf = io.BytesIO()
        pw = {"password": "secret", "header_encryption": True} if "encrypted" in name else {}
        with py7zr.SevenZipFile(buf, "w", **pw) as a:
            for n, d in members.items():
                a.writestr(d, n)
        out.append(Hostile(name, buf.getvalue(), what, allowed))
    return out


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _disguise_cases() -> list[Hostile]:
    evil = call("posix", "system", CMD)
    out = [Hostile(f"disguised{ext}", evil, f"a pickle named {ext or 'without extension'} (CVE-2025-1889 / 10155 class)")
           for ext in (".safetensors", ".gguf", ".json", ".txt", ".npy", ".png", ".onnx", ".yaml", "")]  # fmt: skip
    tzip = torch_zip_bytes(ARRAYS, data_pkl=evil)
    out.append(Hostile("pickle_prefix_zip.pt", evil + tzip, "a pickle in front of a zip"))
    out.append(Hostile("junk_then_zip.bin", b"\x00" * 100 + tzip, "a zip appended to junk (zipfile reads it)"))
    out.append(Hostile("image_with_zip.png", b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 200 + tzip, "a zip appended to a PNG"))
    st = safetensors_bytes({"w": np.zeros(4, np.float32)})
    out.append(Hostile("safetensors_with_zip.safetensors", st + tzip, "a zip appended to a valid safetensors file"))
    # valid safetensors files whose header length starts with EXT4 (0x84), as real unpadded files do, and
    # that still carry a pickle where the header does not account for the bytes, or through the header
    ext4 = safetensors_with_length(0x3BC84, True, False)
    out.append(Hostile("safetensors_ext4_trailing_pickle.safetensors", ext4 + evil, "a pickle after the last tensor"))
    hdr = json.dumps({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                      "b": {"dtype": "U8", "shape": [4], "data_offsets": [4 + len(evil), 8 + len(evil)]}}).encode()  # fmt: skip
    gap = struct.pack("<Q", len(hdr)) + hdr + b"\0" * 4 + evil + b"\1" * 4
    out.append(Hostile("safetensors_gap_pickle.safetensors", gap, "a pickle in a gap between two tensors"))
    out.append(Hostile("safetensors_pickle_polyglot.safetensors", safetensors_pickle_polyglot(evil),
                       "a valid safetensors file whose length prefix and header are a pickle that reaches tensor data"))  # fmt: skip
    return out


#: benign look-alikes that must stay suspicious (never dangerous): the shapes real pickles have
def benign_lookalikes() -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    # Python 3.12+ pickles an enum member as getattr(cls, name); protocol 2 a nested name the same way
    p = P(2).empty_dict().mark().ustr("interpolation").glob("builtins", "getattr").mark()
    p.glob("torchvision.transforms.functional", "InterpolationMode").ustr("BILINEAR").tuple().reduce()
    out["enum_member_by_name.pkl"] = p.setitems().stop()
    # ultralytics Segment: self.detect = Detect.forward, pickled in the module's __dict__
    p = P(2).glob("ultralytics.nn.modules.head", "Segment").tuple_n(0).newobj().empty_dict().mark()
    p.ustr("detect").glob("__builtin__", "getattr").mark().glob("ultralytics.nn.modules.head", "Detect").ustr("forward")
    out["ultralytics_detect_forward.pt"] = p.tuple().reduce().setitems().build().stop()
    # a nested class instantiated (NEWOBJ on getattr(Outer, 'Inner')) and an enum of it called with a value
    p = P(2).empty_list().mark().glob("__builtin__", "getattr", memo=True).mark().glob("mylib.config", "Outer").ustr("Inner")
    p.tuple().reduce().put(50).tuple_n(0).newobj().get(0).mark().get(50).ustr("Mode").tuple().reduce().mark().ustr("train")
    out["nested_class_and_enum.pkl"] = p.tuple().reduce().appends().stop()
    # a bound method of an instance (old OneCycleLR state dicts: anneal_func)
    p = P(2).empty_dict().mark().ustr("anneal_func").glob("__builtin__", "getattr").mark()
    p.glob("torch.optim.lr_scheduler", "OneCycleLR").tuple_n(0).newobj().ustr("_annealing_cos").tuple().reduce()
    out["bound_method_of_instance.pkl"] = p.setitems().stop()
    # an enum member handed to a class constructor
    p = P(2).glob("torchvision.transforms.transforms", "Resize").mark().int(64).glob("builtins", "getattr").mark()
    p.glob("torchvision.transforms.functional", "InterpolationMode").ustr("BICUBIC").tuple().reduce().tuple().reduce()
    out["enum_member_to_constructor.pkl"] = p.stop()
    out["partial_norm_layer.pkl"] = (
        P(2).glob("functools", "partial").mark().glob("torch.nn.modules.normalization", "LayerNorm").tuple().reduce().stop()
    )
    return out


def build_hostile() -> list[Hostile]:
    cases = (
        _gadget_cases() + _real_pickler_cases() + _structural_cases() + _torch_zip_cases() + _legacy_cases()
        + _numpy_cases() + _wrapper_cases() + _disguise_cases()
    )  # fmt: skip
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "duplicate case names"
    return cases


def write_all(root: Path, cases: list[Hostile] | None = None) -> list[tuple[Hostile, Path]]:
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for c in cases if cases is not None else build_hostile():
        p = root / c.name
        p.write_bytes(c.data)
        out.append((c, p))
    return out

