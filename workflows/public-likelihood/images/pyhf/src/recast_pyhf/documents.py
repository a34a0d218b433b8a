"""Workspace documents shared between parts of one step without copying them."""

from __future__ import annotations

from typing import Any

import jsonpointer


class Owned(dict[str, Any]):
    """A document that its holder hands over: pyhf need not copy it.

    pyhf copies the whole document before building a workspace or a model (so
    that its configuration may edit it); for a document made for that one
    purpose, the copy was a third of the time.
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> Owned:
        return self


def copied_along(document: dict[str, Any], ops: list[Any]) -> dict[str, Any]:
    """A copy of ``document`` for JSON Patch ``ops`` to change in place.

    Only the containers on the operations' paths are copied (shallowly); the
    rest is shared with ``document``, which the operations therefore leave as
    it was. A background-only workspace is megabytes, a signal patch touches a
    few of its lists, and a deep copy per patch cost more than the patching.
    """
    root = dict(document)
    copies = {id(root)}
    for op in ops:
        for key in ("path", "from"):
            pointer = op.get(key) if isinstance(op, dict) else None
            if isinstance(pointer, str):
                copy_path(root, pointer, copies)
    return root


def copy_path(root: dict[str, Any], pointer: str, copies: set[int]) -> None:
    """Replace every container above ``pointer``'s target by a copy, once.

    A pointer that does not resolve is left for jsonpatch to report.
    """
    try:
        parts = jsonpointer.JsonPointer(pointer).parts
    except jsonpointer.JsonPointerException:
        return
    node: Any = root
    for part in parts[:-1]:
        try:
            key: Any = int(part) if isinstance(node, list) else part
            child = node[key]
        except (ValueError, KeyError, IndexError, TypeError):
            return
        if not isinstance(child, dict | list):
            return
        if id(child) not in copies:
            child = dict(child) if isinstance(child, dict) else list(child)
            copies.add(id(child))
            node[key] = child
        node = child
