"""Which imported names make a pickle safe, suspicious or dangerous.

* **safe**: the name is on a short allowlist of what a tensor checkpoint needs (torch's tensor and
  storage rebuild functions and storage/dtype classes, ``collections.OrderedDict``, numpy array and
  scalar reconstruction, the few builtins ``torch.load(weights_only=True)`` also accepts);
* **dangerous**: the name is known to run code, touch files, the network or the interpreter: whole
  modules and every submodule of them (``os``, ``subprocess``, ``socket`` …), named builtins (``eval``,
  ``getattr`` …), stdlib and torch gadgets (``functools.partial``, ``operator`` getters, ``importlib``,
  ``torch.storage._load_from_bytes`` …), any dotted name that walks through a dunder attribute or a
  dangerous module (``torch.serialization`` + ``os.system``), and any name that could not be resolved;
* **suspicious**: everything else (an unknown class is not proof of harm, but it is not data either).

Module names are normalised the way the unpickler does for protocol < 3 (``__builtin__`` → ``builtins``,
``copy_reg`` → ``copyreg``) and both spellings are judged; the worse verdict wins.
"""

from __future__ import annotations

import _compat_pickle
from dataclasses import dataclass
from enum import IntEnum


def _words(text: str) -> list[str]:
    return text.split()


class Safety(IntEnum):
    SAFE = 0
    SUSPICIOUS = 1
    DANGEROUS = 2

    @property
    def label(self) -> str:
        return self.name.lower()


_STORAGE_TYPES = [
    "DoubleStorage", "FloatStorage", "HalfStorage", "LongStorage", "IntStorage", "ShortStorage",
    "CharStorage", "ByteStorage", "BoolStorage", "BFloat16Storage", "ComplexDoubleStorage",
    "ComplexFloatStorage", "QUInt8Storage", "QInt8Storage", "QInt32Storage", "QUInt4x2Storage",
    "QUInt2x4Storage", "UntypedStorage",
]  # fmt: skip

_DTYPES = [
    "float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool",
    "complex128", "complex64", "complex32", "uint16", "uint32", "uint64", "float8_e4m3fn", "float8_e5m2",
    "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu", "float4_e2m1fn_x2", "qint8", "quint8", "qint32",
    "quint4x2", "quint2x4", "double", "float", "half", "long", "int", "short", "cfloat", "cdouble",
]  # fmt: skip

_REBUILD = [
    "_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
    "_rebuild_parameter_with_state", "_rebuild_qtensor", "_rebuild_sparse_tensor",
    "_rebuild_meta_tensor_no_storage", "_rebuild_wrapper_subclass", "_rebuild_device_tensor_from_numpy",
    "_rebuild_device_tensor_from_cpu_tensor", "_rebuild_nested_tensor",
]  # fmt: skip

#: sub-byte and bit dtypes ``torch.load(weights_only=True)`` also accepts
_SMALL_DTYPES = (
    [f"uint{i}" for i in range(1, 8)] + [f"int{i}" for i in range(1, 8)]
    + ["bits1x8", "bits2x4", "bits4x2", "bits8", "bits16", "bcomplex32"]
)  # fmt: skip

_TENSOR_TYPES = [
    "DoubleTensor", "FloatTensor", "HalfTensor", "BFloat16Tensor", "LongTensor", "IntTensor", "ShortTensor",
    "CharTensor", "ByteTensor", "BoolTensor",
]  # fmt: skip

#: (module, name) pairs a plain tensor checkpoint may import
SAFE_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    [("torch._utils", n) for n in _REBUILD]
    + [("torch", n) for n in _STORAGE_TYPES]
    + [("torch.cuda", n) for n in _STORAGE_TYPES if n != "UntypedStorage"]
    + [("torch.storage", "UntypedStorage"), ("torch.storage", "TypedStorage"), ("torch", "TypedStorage")]
    + [("torch", n) for n in _DTYPES + _SMALL_DTYPES]
    + [("torch", n) for n in _TENSOR_TYPES]
    + [("torch.cuda", n) for n in _TENSOR_TYPES]
    + [(m, n) for m in ("torch.sparse", "torch.cuda.sparse") for n in _TENSOR_TYPES if n != "BoolTensor"]
    # layouts and memory formats are plain values (older torch pickles a sparse tensor's layout by name)
    + [("torch", n) for n in ("strided", "sparse_coo", "sparse_csr", "sparse_csc", "sparse_bsr", "sparse_bsc",
                              "_mkldnn", "jagged", "contiguous_format", "channels_last", "channels_last_3d",
                              "preserve_format")]
    + [
        ("torch", "Size"),
        ("torch", "Tensor"),
        ("torch", "device"),
        ("torch", "per_tensor_affine"),
        ("torch", "per_tensor_symmetric"),
        ("torch", "per_channel_affine"),
        ("torch", "per_channel_symmetric"),
        ("torch", "per_channel_affine_float_qparams"),
        ("torch.nn.parameter", "Parameter"),
        ("torch._tensor", "_rebuild_from_type_v2"),
        ("torch.serialization", "_get_layout"),
        ("collections", "OrderedDict"),
        ("collections", "Counter"),
        ("_codecs", "encode"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "bytearray"),
        ("builtins", "complex"),
        ("builtins", "slice"),
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    ]
)

@dataclass(frozen=True)
class Gadget:
    """A callable whose job is to deserialize, import or execute: a pickle that calls it hands its
    argument (bytes, a file name, a dotted name, source code) to a second loader that runs code.

    ``name`` is None when every name of ``module`` (and its submodules) is blocked; the test of the
    entry then uses ``example``. ``source`` says where the entry comes from.
    """

    module: str
    name: str | None
    does: str
    source: str
    example: str = ""

    @property
    def label(self) -> str:
        return f"{self.module}.{self.name}" if self.name else f"{self.module}.*"


_PY = "Python documentation"
_B301 = "Bandit B301 (pickle and its wrappers)"

#: second-stage loaders (docs/security.md, "Loader gadgets"); each is dangerous, each has a test. The
#: sources say what an entry rests on: the library's own documentation, Bandit's blacklist, a CVE.
LOADER_GADGETS: tuple[Gadget, ...] = (
    # deserializers: bytes or a file become objects, through pickle or worse
    Gadget("pickle", None, "deserialize", f"{_PY}: 'The pickle module is not secure'; {_B301}", "loads"),
    Gadget("_pickle", None, "deserialize", "the C implementation behind pickle.loads", "loads"),
    Gadget("cPickle", None, "deserialize", "Python 2's pickle (the unpickler maps it to pickle)", "loads"),
    Gadget("pickle5", None, "deserialize", "backport of pickle protocol 5 (the same loads)", "loads"),
    Gadget("dill", None, "deserialize", f"dill pickles functions and code objects; {_B301}", "loads"),
    Gadget("cloudpickle", None, "deserialize", "cloudpickle pickles functions by value; loads is pickle.loads", "loads"),
    Gadget("joblib", None, "deserialize", "joblib docs: joblib.load unpickles; CVE-2022-21797 (eval in Parallel)", "load"),
    Gadget("jsonpickle", None, "deserialize",
           f"jsonpickle README: 'jsonpickle can execute arbitrary Python code'; {_B301}", "decode"),  # fmt: skip
    Gadget("shelve", None, "deserialize", f"{_PY}: a shelf is backed by pickle; {_B301}", "open"),
    Gadget("marshal", None, "deserialize",
           f"{_PY}: 'not intended to be secure'; it loads code objects; Bandit B302", "loads"),  # fmt: skip
    Gadget("yaml", None, "deserialize",
           "PyYAML load / unsafe_load / full_load and Loader / UnsafeLoader / FullLoader build any Python "
           "object: CVE-2017-18342, CVE-2020-1747, CVE-2020-14343; Bandit B506", "unsafe_load"),  # fmt: skip
    Gadget("_yaml", None, "deserialize", "PyYAML's C loaders (CLoader, CUnsafeLoader)", "CLoader"),
    Gadget("ruamel.yaml", None, "deserialize", "ruamel.yaml docs: YAML(typ='unsafe') builds any Python object", "YAML"),
    Gadget("srsly", None, "deserialize", "srsly.pickle_loads and its bundled cloudpickle", "pickle_loads"),
    Gadget("pandas", "read_pickle", "deserialize", f"pandas docs: loading pickled data from untrusted sources can be unsafe; {_B301}"),
    Gadget("pandas", "read_hdf", "deserialize", "pandas stores object columns of an HDF5 table as pickles"),
    Gadget("pandas.io", None, "deserialize", "pandas.io.pickle.read_pickle and the readers behind pandas.read_*", "pickle.read_pickle"),
    Gadget("torch", "load", "deserialize", "PyTorch docs warning (weights_only=False unpickles); CVE-2025-32434"),
    Gadget("torch.serialization", None, "deserialize", "torch.load's module (load, _load, _legacy_load)", "_legacy_load"),
    Gadget("torch.storage", "_load_from_bytes", "deserialize", "calls torch.load on the bytes it is given"),
    Gadget("torch.jit", None, "execute", "torch.jit.load compiles and runs TorchScript", "load"),
    Gadget("torch.hub", None, "execute", "torch.hub.load imports a repository's hubconf.py", "load"),
    Gadget("torch.package", None, "execute", "torch.package.PackageImporter imports the packaged code", "PackageImporter"),
    Gadget("numpy", "load", "deserialize", "numpy.load(allow_pickle=True) unpickles object arrays: CVE-2019-6446"),
    Gadget("numpy", "loads", "deserialize", "numpy.loads was pickle.loads (removed in numpy 1.17)"),
    Gadget("numpy.lib.npyio", None, "deserialize", "numpy.load's module", "load"),
    Gadget("numpy.lib._npyio_impl", None, "deserialize", "numpy.load's module (numpy 2)", "load"),
    Gadget("numpy.lib.format", "read_array", "deserialize", "read_array(allow_pickle=True) unpickles object arrays"),
    Gadget("numpy.ma", "load", "deserialize", "numpy.ma.load was pickle.load (removed in numpy 2)"),
    Gadget("numpy.ma", "loads", "deserialize", "numpy.ma.loads was pickle.loads (removed in numpy 2)"),
    Gadget("numpy.ma.core", "loads", "deserialize", "numpy.ma.loads was pickle.loads (removed in numpy 2)"),
    Gadget("numpy.core.numeric", "loads", "deserialize", "numpy.loads was pickle.loads (removed in numpy 1.17)"),
    # importers: a dotted name or a path becomes code
    Gadget("importlib", None, "import", f"{_PY}: import_module, util.spec_from_file_location …", "import_module"),
    Gadget("importlib_metadata", None, "import", "EntryPoint.load imports any object by name", "EntryPoint"),
    Gadget("importlib_resources", None, "import", "the importlib.resources backport (files, as_file)", "files"),
    Gadget("pkgutil", None, "import", f"{_PY}: pkgutil.resolve_name imports any dotted name", "resolve_name"),
    Gadget("pkg_resources", None, "import", "EntryPoint.load / resolve and load_entry_point import any object", "load_entry_point"),
    Gadget("pydoc", None, "import", "pydoc.locate imports any dotted name", "locate"),
    Gadget("zipimport", None, "import", f"{_PY}: zipimporter imports modules from any zip", "zipimporter"),
    Gadget("imp", None, "import", f"{_PY}: imp.load_source / load_module (removed in 3.12)", "load_source"),
    Gadget("hydra.utils", None, "import", "hydra docs: instantiate / call resolve and call any _target_", "instantiate"),
    Gadget("hydra._internal", None, "import", "hydra's name resolver behind instantiate", "utils._locate"),
    Gadget("builtins", "__import__", "import", f"{_PY}: imports any module"),
    # executors: source or code objects run
    Gadget("runpy", None, "execute", f"{_PY}: run_path / run_module run a file or module as __main__", "run_path"),
    Gadget("code", None, "execute", f"{_PY}: InteractiveInterpreter.runsource runs source", "InteractiveInterpreter"),
    Gadget("codeop", None, "execute", f"{_PY}: compile_command / Compile make code objects from source", "compile_command"),
    Gadget("builtins", "exec", "execute", f"{_PY}: runs source or a code object"),
    Gadget("builtins", "eval", "execute", f"{_PY}: evaluates source"),
    Gadget("builtins", "compile", "execute", f"{_PY}: makes a code object from source"),
    Gadget("types", None, "execute", f"{_PY}: FunctionType / CodeType build functions from code objects", "FunctionType"),
    Gadget("pandas", "eval", "execute", "pandas docs: evaluates an expression string"),
    Gadget("numexpr", None, "execute", "numexpr.evaluate compiles an expression string (CVE-2023-39631)", "evaluate"),
    Gadget("asteval", None, "execute", "asteval.Interpreter evaluates Python source", "Interpreter"),
)

#: modules (and every submodule) any name of which is dangerous
DANGEROUS_MODULES: frozenset[str] = frozenset(
    _words(
        """
        os posix nt posixpath ntpath _posixsubprocess _winapi msvcrt winreg subprocess sys pty tty termios
        runpy code codeop marshal types importlib imp _imp _frozen_importlib _frozen_importlib_external
        pkgutil zipimport site sysconfig gc inspect ctypes _ctypes cffi signal _signal atexit threading
        _thread multiprocessing concurrent socket _socket ssl _ssl select selectors socketserver asyncio
        http urllib urllib2 urllib3 httplib httpx requests aiohttp ftplib smtplib poplib imaplib nntplib
        telnetlib xmlrpc webbrowser antigravity mailcap cgi cgitb wsgiref pickle _pickle cPickle dill
        cloudpickle joblib shelve dbm sqlite3 _sqlite3 shutil tempfile fileinput glob filecmp mmap fcntl
        resource linecache zipfile tarfile gzip bz2 lzma compileall py_compile distutils setuptools pip
        ensurepip venv pydoc pdb bdb trace profile cProfile timeit doctest unittest test idlelib lib2to3
        _osx_support _aix_support _pyrepl uuid platform logging syslog pipes pexpect operator _operator
        functools _functools _multiprocessing _posixshmem _xxsubinterpreters _interpreters _sitebuiltins
        _lsprof yaml jinja2 mako numexpr IPython sympy pandas.io keras tensorflow huggingface_hub fsspec
        boto3 botocore paramiko git numpy.f2py numpy.testing numpy.distutils numpy.ctypeslib
        numpy.lib.npyio numpy.lib._npyio_impl numpy.lib._datasource numpy.core._internal numpy._core._internal
        pandas.core.computation tkinter _tkinter turtle turtledemo asyncore asynchat smtpd
        torch.jit torch._dynamo.guards torch._dynamo.debug_utils torch._C._dynamo torch._inductor torch.fx
        torch.hub torch.package torch.compiler torch.multiprocessing torch.ops torch._ops torch.classes torch._classes
        torch.serialization torch.utils.cpp_extension torch.utils.collect_env
        torch.utils.bottleneck torch.utils._config_module torch.utils.data.datapipes torch.utils.model_zoo
        torch.utils.tensorboard torch.utils.show_pickle torch.utils.benchmark torch.cuda.jiterator
        torch.cuda.memory torch.cuda._memory_viz torch.distributed.rpc torch.distributed.run
        torch.distributed.launch torch.distributed.launcher torch.distributed.elastic
        torch.distributed.rendezvous torch.distributed.distributed_c10d torch.distributed.checkpoint
        torch.testing torch.onnx
        """
    )
    + [g.module for g in LOADER_GADGETS if g.name is None]
)

#: specific names (module, name) that are dangerous although their module as a whole is not
DANGEROUS_NAMES: frozenset[tuple[str, str]] = frozenset(
    [
        ("torch", "load"),
        ("torch", "save"),
        ("torch", "from_file"),
        ("torch.serialization", "load"),
        ("torch.serialization", "_load"),
        ("torch.serialization", "_legacy_load"),
        ("torch.serialization", "save"),
        ("torch.storage", "_load_from_bytes"),
        ("torch.storage", "_StorageBase"),
        ("torch.storage", "UntypedStorage.from_file"),
        ("torch._utils", "_import_dotted_name"),
        ("torch._ops", "ops"),
        ("torch.ops", "load_library"),
        ("torch.classes", "load_library"),
        ("torch.hub", "load"),
        ("ops.aten", "save"),
        ("ops.aten", "from_file"),
        ("ops.aten", "_load_for_mobile"),
        ("torch", "ops"),
        ("torch._C", "_load_for_lite_interpreter"),
        ("torch._C", "import_ir_module"),
        ("torch._C", "_jit_set_profiling_executor"),
        ("torch.nn.modules.module", "Module.load_state_dict"),
        ("numpy", "load"),
        ("numpy", "loadtxt"),
        ("numpy", "genfromtxt"),
        ("numpy", "fromfile"),
        ("numpy", "memmap"),
        ("numpy", "save"),
        ("numpy", "savez"),
        ("numpy", "savetxt"),
        ("numpy", "DataSource"),
        ("numpy.lib.format", "open_memmap"),
        ("numpy.lib.format", "read_array"),
        ("numpy.core.memmap", "memmap"),
        ("numpy._core.memmap", "memmap"),
        ("pandas", "read_pickle"),
        ("pandas", "read_csv"),
        ("pandas", "eval"),
        ("pandas.core.computation.eval", "eval"),
        ("collections", "namedtuple"),
        ("io", "open"),
        ("io", "open_code"),
        ("io", "FileIO"),
        ("_io", "open"),
        ("_io", "open_code"),
        ("_io", "FileIO"),
        ("codecs", "open"),
        ("copyreg", "add_extension"),
        ("copyreg", "dispatch_table"),
        ("copyreg", "_extension_registry"),
        ("dataclasses", "_create_fn"),
        ("dataclasses", "_FuncBuilder"),
        ("typing", "get_type_hints"),
        ("typing", "_eval_type"),
        ("typing", "ForwardRef._evaluate"),
        ("numpy", "fromregex"),
        ("numpy.core.records", "fromfile"),
        ("numpy._core.records", "fromfile"),
        ("numpy.rec", "fromfile"),
        ("torch", "compile"),
        ("torch.distributed", "init_process_group"),
    ]
    + [(g.module, g.name) for g in LOADER_GADGETS if g.name is not None and g.module != "builtins"]
)

#: plain data classes that real checkpoints pickle, inside modules that are otherwise blocked: these are
#: judged suspicious (not on the allowlist), not dangerous
SOFTENED: frozenset[tuple[str, str]] = frozenset(
    [
        ("uuid", "UUID"),
        ("uuid", "SafeUUID"),
        ("logging", "getLogger"),
        ("logging", "Logger"),
        ("logging", "RootLogger"),
        ("logging", "LogRecord"),
        ("logging", "Formatter"),
        ("types", "SimpleNamespace"),
        ("types", "MappingProxyType"),
        # a partial only binds arguments: what it wraps is imported (and judged) on its own; whole pickled
        # modules keep ``norm_layer=partial(nn.LayerNorm, eps=1e-6)`` (timm and others)
        ("functools", "partial"),
        # TorchScript archives' data.pkl / constants.pkl: identity functions that tag container types
        ("torch.jit._pickle", "build_intlist"),
        ("torch.jit._pickle", "build_tensorlist"),
        ("torch.jit._pickle", "build_doublelist"),
        ("torch.jit._pickle", "build_boollist"),
        ("torch.jit._pickle", "build_complexlist"),
        ("torch.jit._pickle", "build_tensor_from_id"),
        ("torch.jit._pickle", "restore_type_tag"),
        # nested jagged tensors pickle this record (dim, min, max) with their metadata
        ("torch._dynamo.decorators", "_DimRange"),
    ]
)

#: modules whose classes appear in real pickles (``torch.save(torch.compile(model))`` pickles dynamo's
#: wrapper objects) but whose functions compile, trace or write repro files: a single class-like name is
#: suspicious, anything else (a function, a method ``Class.name``) is dangerous
CLASSES_ONLY: frozenset[str] = frozenset({"torch._dynamo", "torch._functorch", "torch.export", "torch._export"})

#: builtins that run code, reach attributes or touch files
DANGEROUS_BUILTINS: frozenset[str] = frozenset(
    _words(
        """
        eval exec execfile compile open file input raw_input __import__ getattr setattr delattr globals
        locals vars breakpoint exit quit help reload apply __loader__ __build_class__ __spec__
        """
    )
)

#: last components of a dotted name that run code whatever module they come from
DANGEROUS_LEAVES: frozenset[str] = frozenset(
    _words(
        """
        system popen popen2 popen3 popen4 spawnl spawnle spawnlp spawnlpe spawnv spawnve spawnvp spawnvpe
        execl execle execlp execlpe execv execve execvp execvpe fork forkpty posix_spawn posix_spawnp
        check_output check_call getoutput getstatusoutput Popen run_path run_module import_module
        load_source load_module exec_module load_dynamic __import__ eval exec execfile compile open
        write_text write_bytes read_text read_bytes unlink rmdir mkdir makedirs touch rename chmod chown
        symlink_to hardlink_to link_to remove removedirs rmtree urlopen urlretrieve spawn from_file fromfile
        tofile load_library load_inline compile_file _exec_with_source execWrapper runsource runcode
        runcommand runctx runcall runeval run_autograd_prof run_cprofile _run_pip debug_script runstring
        evaluate_guards_expression _create_fn init_process_group init_rpc InteractiveInterpreter
        InteractiveConsole ModifiedInterpreter
        """
    )
)

_BUILTIN_MODULES = ("builtins", "__builtin__", "__builtins__")

#: dunder names that are ordinary importable functions (``copyreg.__newobj__`` in protocol-2 pickles)
_PLAIN_DUNDERS = frozenset({"__newobj__", "__newobj_ex__"})

#: attribute names that ``getattr(x, name)`` may never fetch, whatever ``x`` is: code runners, file and
#: process calls, loaders, and names of modules or builtins that lead further
FETCH_BLOCKED: frozenset[str] = (
    DANGEROUS_LEAVES
    | DANGEROUS_BUILTINS
    | frozenset(m.split(".")[0] for m in DANGEROUS_MODULES)
    | frozenset(
        _words(
            """
            load loads save savez dump dumps tofile fromfile from_file load_library load_state_dict
            builtins modules globals func_globals f_globals f_locals f_back gi_frame gi_code tb_frame
            co_code system_call call run start spawn shell command pipe socket connect
            """
        )
    )
)


def judge_fetch(attr: object, target: tuple[str, str] | None, instance: bool) -> tuple[Safety, str]:
    """One ``getattr(target, attr)`` whose result the stream only stores (never calls, never fetches from
    again, never hands to a function): how a bound method or, since Python 3.12, an enum member is pickled.

    ``target`` is the (module, name) of the global fetched from, or of the class an instance was built
    from (``instance``); None when the target is anything else. Suspicious at best: the value still comes
    from code outside the allowlist.
    """
    if not isinstance(attr, str) or not attr.isidentifier():
        return Safety.DANGEROUS, f"getattr with a computed or non-identifier attribute name {attr!r}"
    if attr.startswith("__") and attr.endswith("__"):
        return Safety.DANGEROUS, f"getattr fetches the dunder attribute {attr!r}"
    if attr in FETCH_BLOCKED:
        return Safety.DANGEROUS, f"getattr fetches {attr!r}, which runs code, touches files or leads to a module"
    if target is None:
        return Safety.DANGEROUS, "getattr on a value that is neither an imported name nor an instance of one"
    tm, tn = target
    safety, why = judge(tm, tn)
    if safety == Safety.DANGEROUS:
        return Safety.DANGEROUS, f"getattr on {tm}.{tn}, which is dangerous itself ({why})"
    what = f"an instance of {tm}.{tn}" if instance else f"{tm}.{tn}"
    return (
        Safety.SUSPICIOUS,
        f"fetches {attr!r} from {what} by name (how a bound method or an enum member is pickled); the value is "
        "only stored, never called",
    )


def class_like_name(name: str) -> bool:
    """``Resize``, ``_VariableFunctionsClass``: spelled like a class, not a function."""
    leaf = name.rsplit(".", 1)[-1].lstrip("_")
    return bool(leaf) and leaf[0].isupper()


def _in_modules(module: str, modules: frozenset[str]) -> str | None:
    """The entry of ``modules`` that ``module`` is or lies under, if any."""
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        head = ".".join(parts[:i])
        if head in modules:
            return head
    return None


def _normalise(module: str, name: str) -> tuple[str, str]:
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    if module in _compat_pickle.IMPORT_MAPPING:
        return _compat_pickle.IMPORT_MAPPING[module], name
    return module, name


def _judge_one(module: str, name: str) -> tuple[Safety, str]:
    if (module, name) in SAFE_GLOBALS:
        return Safety.SAFE, "on the tensor-checkpoint allowlist"
    parts = name.split(".")
    for p in parts:
        if len(p) > 4 and p.startswith("__") and p.endswith("__") and (len(parts) > 1 or p not in _PLAIN_DUNDERS):
            return Safety.DANGEROUS, f"walks through the dunder attribute {p!r}"
    if module in _BUILTIN_MODULES:
        if parts[0] in DANGEROUS_BUILTINS:
            return Safety.DANGEROUS, f"builtin {parts[0]!r} runs code, reaches attributes or opens files"
        if len(parts) > 1:
            return Safety.DANGEROUS, "reaches an attribute of a builtin"
        return Safety.SUSPICIOUS, "builtin outside the allowlist"
    if (module, name) in SOFTENED:
        return Safety.SUSPICIOUS, "not on the allowlist (a plain data class or helper of an otherwise blocked module)"
    owner = _in_modules(module, CLASSES_ONLY)
    if owner is not None and not (len(parts) == 1 and class_like_name(name)):
        return Safety.DANGEROUS, f"{module}.{name} is not a class of {owner!r}, whose functions compile or run code"
    hit = _in_modules(module, DANGEROUS_MODULES)
    if hit is not None:
        what = "is" if hit == module else f"lies under {hit!r}, which is"
        return Safety.DANGEROUS, f"module {module!r} {what} blocked (code, files, network or interpreter)"
    for i in range(len(parts), 0, -1):
        if (module, ".".join(parts[:i])) in DANGEROUS_NAMES:
            return Safety.DANGEROUS, f"{module}.{'.'.join(parts[:i])} is a known gadget"
    if len(parts) > 1:
        # ``torch.serialization`` + ``os.system``: attribute traversal from an innocent module
        for p in parts[:-1]:
            if p in DANGEROUS_MODULES or p in _BUILTIN_MODULES:
                return Safety.DANGEROUS, f"reaches module {p!r} through an attribute chain"
    if parts[-1] in DANGEROUS_LEAVES:
        return Safety.DANGEROUS, f"{parts[-1]!r} runs code or touches files, whatever module defines it"
    if not module or not name or any(not p.isidentifier() for p in module.split(".") + parts):
        return Safety.SUSPICIOUS, "not a valid dotted Python name"
    return Safety.SUSPICIOUS, "not on the allowlist"


def judge(module: str, name: str, resolved: bool = True) -> tuple[Safety, str]:
    """Classify one imported name; returns the verdict and the reason in words."""
    if not resolved or module == "?" or name == "?":
        return Safety.DANGEROUS, "operands could not be resolved statically (treated as dangerous)"
    raw = _judge_one(module, name)
    nm, nn = _normalise(module, name)
    if (nm, nn) == (module, name):
        return raw
    norm = _judge_one(nm, nn)
    if norm[0] == Safety.SAFE and raw[0] <= Safety.SUSPICIOUS:
        # a protocol-2 pickle spells builtins ``__builtin__``: the unpickler maps it, so judge the mapping
        return norm
    return max(norm, raw, key=lambda v: v[0])
