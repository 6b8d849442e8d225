"""The judgement of imported names: what real checkpoints import is never called dangerous."""

from __future__ import annotations

import pytest

from registry.files.pickle_policy import Safety, judge


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_parameter"),
        ("torch", "BFloat16Storage"),
        ("torch", "float8_e4m3fn"),
        ("torch.nn.parameter", "Parameter"),
        ("torch._tensor", "_rebuild_from_type_v2"),
        ("collections", "OrderedDict"),
        ("_codecs", "encode"),
        ("__builtin__", "set"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "dtype"),
    ],
)
def test_allowlist(module: str, name: str) -> None:
    assert judge(module, name)[0] == Safety.SAFE


@pytest.mark.parametrize(
    ("module", "name"),
    [
        # what real training checkpoints and full-model pickles import
        ("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint"),
        ("omegaconf.dictconfig", "DictConfig"),
        ("typing", "Any"),
        ("argparse", "Namespace"),
        ("builtins", "dict"),
        ("copy_reg", "_reconstructor"),
        ("pathlib", "PosixPath"),
        ("uuid", "UUID"),
        ("logging", "getLogger"),
        ("types", "SimpleNamespace"),
        ("torch.nn.modules.conv", "Conv2d"),
        ("torch._dynamo.eval_frame", "OptimizedModule"),
        ("__main__", "MyModel"),
        ("datetime", "datetime"),
        ("collections", "defaultdict"),
        ("functools", "partial"),
        ("torch.jit._pickle", "build_intlist"),
        ("torch._dynamo.convert_frame", "ConvertFrameAssert"),
        ("torch._dynamo.decorators", "_DimRange"),
        ("copyreg", "__newobj__"),
    ],
)
def test_real_checkpoint_names_are_suspicious_not_dangerous(module: str, name: str) -> None:
    assert judge(module, name)[0] == Safety.SUSPICIOUS


@pytest.mark.parametrize(
    ("module", "name", "why"),
    [
        ("posix", "system", "blocked"),
        ("os.path", "join", "lies under 'os'"),
        ("__builtin__", "getattr", "builtin 'getattr'"),
        ("builtins", "getattr.__self__", "dunder"),
        ("torch.serialization", "os.system", "'torch.serialization' is blocked"),
        ("torch.nn.functional", "F.os.system", "attribute chain"),
        ("torch._dynamo.eval_frame", "optimize", "not a class of 'torch._dynamo'"),
        ("torch._dynamo.eval_frame", "OptimizedModule.__reduce__", "dunder"),
        ("numpy", "__builtins__", "dunder"),
        ("functools", "reduce", "blocked"),
        ("collections", "OrderedDict.__class__.__base__", "dunder"),
        ("uuid", "_get_command_stdout", "blocked"),
        ("logging.config", "listen", "lies under 'logging'"),
        ("types", "FunctionType", "blocked"),
        ("somewhere.else", "popen", "whatever module"),
        ("commands", "getoutput", "blocked"),
        ("cPickle", "loads", "blocked"),
        ("torch", "load", "known gadget"),
        ("numpy", "load", "known gadget"),
        ("?", "?", "could not be resolved"),
    ],
)
def test_dangerous(module: str, name: str, why: str) -> None:
    safety, reason = judge(module, name)
    assert safety == Safety.DANGEROUS and why in reason, reason
