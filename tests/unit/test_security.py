"""Security without a flow run or a server: a model file with Python code is refused unrun, and the
check the loopback test relies on tells wildcard from loopback binds (the rest is in tests/e2e/)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import keras
import pytest

from tasks.errors import PipelineError
from tasks.training import evaluation
from tests.helpers import listening_addresses


def save_model_with_lambda(path: Path, marker: Path) -> Path:
    """A model whose Lambda layer, when run, creates `marker`; saved as .keras with the lambda's bytecode."""
    ids = keras.Input((5,), dtype="int32")
    touched = keras.layers.Lambda(
        lambda t, path: __import__("pathlib").Path(path).touch() or t, arguments={"path": str(marker)}
    )(ids)
    model = keras.Model(ids, keras.layers.Dense(1)(keras.ops.cast(touched, "float32")))
    model.save(path)
    marker.unlink()  # building the model ran the lambda once; only loading counts below
    return path


def test_a_model_with_a_python_lambda_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = save_model_with_lambda(tmp_path / "model.keras", marker)
    for uri in (str(path), f"file://{path}"):
        with pytest.raises(PipelineError) as caught:
            evaluation.load_model(uri)
        message = str(caught.value)
        assert message.startswith(f"{uri}: ") and "Lambda" in message and "\n" not in message
        assert not marker.exists()

    keras.models.load_model(path, safe_mode=False)  # unsafe loading does run it: the file is live
    assert marker.exists()


def test_the_listener_check_tells_wildcard_from_loopback_binds():
    bound = [("0.0.0.0", socket.AF_INET), ("::", socket.AF_INET6), ("127.0.0.1", socket.AF_INET)]
    sockets = [socket.socket(family) for _, family in bound]
    try:
        for sock, (address, _) in zip(sockets, bound, strict=True):
            sock.bind((address, 0))
            sock.listen()
        expected = {(address, sock.getsockname()[1]) for sock, (address, _) in zip(sockets, bound, strict=True)}
        assert expected <= listening_addresses([os.getpid()])
    finally:
        for sock in sockets:
            sock.close()
