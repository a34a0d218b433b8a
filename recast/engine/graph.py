"""Draw the graph of steps of a yadage spec as SVG, before, during or after a run.

Input: the resolved spec (stages with their dependencies; singlestep and
multistep stages; subworkflows as nested boxes), and optionally each step's
state, from yadage's snapshot or from a map of step name to state. Output: SVG
text that stands alone (colours as presentation attributes, so no stylesheet is
needed) and carries class names a page's stylesheet may use. No Django here.

The layout is layered: a stage sits one layer below the deepest stage it
depends on, and the stages of a layer are ordered by where their dependencies
are. Every label is escaped; a long one is shortened, with the full text in the
box's tooltip.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

INIT = "init"
STATES = ("pending", "running", "succeeded", "failed", "cancelled")
# fill, stroke; the text is dark on every fill (contrast above 7:1).
COLOURS = {
    None: ("#ffffff", "#475569"),
    "pending": ("#f1f5f9", "#64748b"),
    "running": ("#dbeafe", "#1d4ed8"),
    "succeeded": ("#dcfce7", "#15803d"),
    "failed": ("#fee2e2", "#b91c1c"),
    "cancelled": ("#fef3c7", "#b45309"),
}
# yadage's node states and recast's step statuses, in one vocabulary.
SYNONYMS = {
    "success": "succeeded",
    "succeeded": "succeeded",
    "failed": "failed",
    "running": "running",
    "defined": "pending",
    "submitted": "pending",
    "queued": "pending",
    "pending": "pending",
    "cancelled": "cancelled",
    "canceled": "cancelled",
}
FONT = 13
CHAR_WIDTH = 7.4  # average advance of the sans-serif font at 13 px
BOX_HEIGHT = 46
MIN_WIDTH = 120
MAX_LABEL = 36
H_GAP = 28
V_GAP = 40
PAD = 14
HEADER = 40
MARGIN = 12
STACK = 4  # offset of the shadow boxes of a scatter stage


@dataclass
class Node:
    key: str  # path of the stage: "fit", or "statistics/fit" inside a subworkflow
    name: str
    kind: str  # init, step, scatter or workflow
    depends: list[str]
    detail: str = ""
    state: str | None = None
    instances: int = 0
    inner: Layout | None = None
    width: float = 0.0
    height: float = 0.0
    x: float = 0.0
    y: float = 0.0


@dataclass
class Layout:
    nodes: list[Node]
    width: float = 0.0
    height: float = 0.0
    edges: list[tuple[str, str]] = field(default_factory=list)


def normalise(state: Any) -> str:
    return SYNONYMS.get(str(state).lower(), "pending")


def combined(states: list[str]) -> str | None:
    """One state for a stage of several steps, or a subworkflow's stages."""
    if not states:
        return None
    for state in ("failed", "running", "cancelled"):
        if state in states:
            return state
    return "succeeded" if all(s == "succeeded" for s in states) else "pending"


def dependency_names(stage: Mapping[str, Any], names: set[str]) -> list[str]:
    """The stages ``stage`` waits for: a list of names, or yadage's
    ``{dependency_type, expressions}`` form whose expressions name stages."""
    given = stage.get("dependencies", [])
    if isinstance(given, Mapping):
        given = given.get("expressions", [])
    if isinstance(given, str):
        given = [given]
    found: list[str] = []
    for expression in given if isinstance(given, list) else []:
        text = str(expression)
        words = [text] if text in names else re.findall(r"[A-Za-z0-9_\-]+", text)
        found += [w for w in words if w in names and w not in found]
    return found


def step_detail(step: Any) -> str:
    environment = step.get("environment") if isinstance(step, Mapping) else None
    if not isinstance(environment, Mapping) or not environment.get("image"):
        return ""
    tag = environment.get("imagetag")
    return f"{environment['image']}:{tag}" if tag else str(environment["image"])


def stage_node(stage: Mapping[str, Any], prefix: str, names: set[str]) -> Node:
    scheduler = stage.get("scheduler", {})
    name = str(stage.get("name", "?"))
    key = f"{prefix}{name}"
    depends = [f"{prefix}{d}" for d in dependency_names(stage, names)]
    if isinstance(scheduler.get("workflow"), Mapping):
        inner = layout(scheduler["workflow"], f"{key}/")
        return Node(key, name, "workflow", depends, "subworkflow", inner=inner)
    kind = "scatter" if scheduler.get("scheduler_type") == "multistep-stage" else "step"
    return Node(key, name, kind, depends, step_detail(scheduler.get("step")))


def layers_of(nodes: list[Node]) -> dict[str, int]:
    """Longest-path layering; a dependency cycle (which yadage refuses) is cut."""
    by_key = {node.key: node for node in nodes}
    layer: dict[str, int] = {}

    def depth(key: str, seen: frozenset[str]) -> int:
        if key in layer:
            return layer[key]
        parents = [d for d in by_key[key].depends if d in by_key and d not in seen]
        value = 1 + max((depth(p, seen | {key}) for p in parents), default=-1)
        if by_key[key].kind != "init" and not parents:
            value = max(value, 1)
        layer[key] = value
        return value

    for node in nodes:
        depth(node.key, frozenset())
    return layer


def layout(spec: Mapping[str, Any], prefix: str = "") -> Layout:
    """Place the stages of ``spec`` (positions relative to its top left)."""
    stages = [s for s in spec.get("stages", []) if isinstance(s, Mapping)]
    names = {str(s.get("name")) for s in stages} | {INIT}
    nodes = [Node(f"{prefix}{INIT}", INIT, "init", [], "inputs")]
    nodes += [stage_node(stage, prefix, names) for stage in stages]
    edges = [(d, n.key) for n in nodes for d in n.depends]
    return Layout(nodes, edges=edges)


def size(node: Node) -> None:
    label = shortened(display_name(node))
    text = max(len(label), len(shortened(node.detail)))
    node.width = max(MIN_WIDTH, text * CHAR_WIDTH + 2 * PAD)
    node.height = BOX_HEIGHT
    if node.inner is not None:
        place(node.inner)
        node.width = max(node.width, node.inner.width + 2 * PAD)
        node.height = node.inner.height + HEADER + PAD


def place(graph: Layout) -> None:
    """Give every node its size and position, and the graph its size."""
    for node in graph.nodes:
        size(node)
    layer = layers_of(graph.nodes)
    rows: dict[int, list[Node]] = {}
    for node in graph.nodes:
        rows.setdefault(layer[node.key], []).append(node)

    centre: dict[str, float] = {}
    rows_width = {}
    for index in sorted(rows):
        row = rows[index]
        order = {n.key: i for i, n in enumerate(row)}
        row.sort(key=lambda n: (barycentre(n, centre), order[n.key]))
        x = 0.0
        for node in row:
            node.x = x
            centre[node.key] = x + node.width / 2
            x += node.width + H_GAP
        rows_width[index] = x - H_GAP
    graph.width = max(rows_width.values(), default=0.0)

    y = 0.0
    for index in sorted(rows):
        shift = (graph.width - rows_width[index]) / 2
        for node in rows[index]:
            node.x += shift
            node.y = y
        y += max(n.height for n in rows[index]) + V_GAP
    graph.height = y - V_GAP


def barycentre(node: Node, centre: Mapping[str, float]) -> float:
    placed = [centre[d] for d in node.depends if d in centre]
    return sum(placed) / len(placed) if placed else 0.0


def display_name(node: Node) -> str:
    if node.kind == "scatter" and node.instances:
        return f"{node.name} \N{MULTIPLICATION SIGN}{node.instances}"
    return node.name


def shortened(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def snapshot_states(snapshot: Mapping[str, Any]) -> dict[str, list[str]]:
    """Each stage's steps' states from yadage's snapshot, by stage path."""
    found: dict[str, list[str]] = {}
    for node in snapshot.get("dag", {}).get("nodes", []):
        metadata = node.get("task", {}).get("metadata", {})
        stage = metadata.get("wflow_stage") or node.get("name")
        offset = str(metadata.get("wflow_offset") or "")
        parts = [re.sub(r"_\d+$", "", p) for p in offset.split("/") if p]
        key = "/".join([*parts, str(stage)])
        found.setdefault(key, []).append(normalise(node.get("state")))
    return found


def named_states(
    graph: Layout, steps: Mapping[str, str], found: dict[str, list[str]]
) -> None:
    """Match step names to stages: ``fit``, or ``selection_3`` of a scatter."""
    for node in graph.nodes:
        if node.inner is not None:
            named_states(node.inner, steps, found)
            continue
        pattern = re.compile(rf"{re.escape(node.name)}(_\d+)?")
        states = [normalise(s) for n, s in steps.items() if pattern.fullmatch(n)]
        if states:
            found[node.key] = states


def apply_states(graph: Layout, found: Mapping[str, list[str]], started: bool) -> None:
    """``started``: the workflow (or subworkflow) has begun, so its init is done."""
    for node in graph.nodes:
        if node.inner is not None:
            inner_started = any(key.startswith(f"{node.key}/") for key in found)
            apply_states(node.inner, found, inner_started)
            states = [n.state for n in node.inner.nodes if n.kind != "init"]
            node.state = combined([s for s in states if s])
        elif node.key in found:
            node.state = combined(found[node.key])
            if node.kind == "scatter":
                node.instances = len(found[node.key])
        elif node.kind == "init" and started:
            node.state = "succeeded"
        else:
            node.state = "pending"


def render(
    spec: Mapping[str, Any],
    *,
    snapshot: Mapping[str, Any] | None = None,
    states: Mapping[str, str] | None = None,
    title: str = "Workflow graph",
) -> str:
    """The SVG of ``spec``'s steps. With ``snapshot`` (yadage's) or ``states``
    (step name to state: recast's statuses or yadage's), each box shows its
    state; without either, the image each step runs in."""
    graph = layout(spec)
    found: dict[str, list[str]] = {}
    if snapshot is not None:
        found = snapshot_states(snapshot)
    elif states is not None:
        named_states(graph, states, found)
    ran = snapshot is not None or states is not None
    if ran:
        # The inputs are in place once any step has begun.
        apply_states(graph, found, bool(found))
    place(graph)
    return svg(graph, title, ran)


def svg(graph: Layout, title: str, ran: bool) -> str:
    width = graph.width + 2 * MARGIN
    height = graph.height + 2 * MARGIN
    summary = "; ".join(
        f"{n.name}: {n.state or n.kind}" for n in walk(graph) if n.kind != "init"
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="workflow-graph" '
        f'role="img" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" '
        f'font-family="sans-serif" font-size="{FONT}">',
        f"<title>{escape(title)}</title>",
        f"<desc>{escape(summary)}</desc>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M 0 0 L 10 5 L 0 10 z" fill="#475569"/></marker></defs>',
    ]
    parts += draw(graph, MARGIN, MARGIN, ran)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def walk(graph: Layout) -> list[Node]:
    nodes = []
    for node in graph.nodes:
        nodes.append(node)
        if node.inner is not None:
            nodes += walk(node.inner)
    return nodes


def draw(graph: Layout, dx: float, dy: float, ran: bool) -> list[str]:
    by_key = {node.key: node for node in graph.nodes}
    parts = []
    for source, target in graph.edges:
        if source in by_key and target in by_key:
            parts.append(edge(by_key[source], by_key[target], dx, dy))
    for node in graph.nodes:
        parts += box(node, dx, dy, ran)
    return parts


def edge(source: Node, target: Node, dx: float, dy: float) -> str:
    x1, y1 = dx + source.x + source.width / 2, dy + source.y + source.height
    x2, y2 = dx + target.x + target.width / 2, dy + target.y
    if target.kind == "scatter":
        y2 -= 2 * STACK  # above the shadow boxes
    middle = (y1 + y2) / 2
    return (
        f'<path class="edge" d="M {x1:.1f} {y1:.1f} C {x1:.1f} {middle:.1f} '
        f'{x2:.1f} {middle:.1f} {x2:.1f} {y2 - 1:.1f}" fill="none" '
        'stroke="#475569" stroke-width="1.5" marker-end="url(#arrow)"/>'
    )


def box(node: Node, dx: float, dy: float, ran: bool) -> list[str]:
    fill, stroke = COLOURS[node.state]
    x, y = dx + node.x, dy + node.y
    state = node.state or "static"
    detail = node.state if ran and node.state else node.detail
    tooltip = f"{node.key} ({node.kind}): {detail}" if detail else node.key
    parts = [
        f"<g class={quoteattr(f'stage stage-{node.kind} state-{state}')} "
        f"data-stage={quoteattr(node.key)}>",
        f"<title>{escape(tooltip)}</title>",
    ]
    if node.kind == "scatter":
        for offset in (2 * STACK, STACK):
            parts.append(rect(x + offset, y - offset, node, fill, stroke))
    parts.append(rect(x, y, node, fill, stroke, dashed=node.kind == "init"))
    middle = x + node.width / 2
    label = escape(shortened(display_name(node)))
    weight = ' font-weight="bold"'
    if node.inner is not None:
        parts.append(text(middle, y + 17, label, weight))
        parts.append(text(middle, y + 32, escape(shortened(detail)), ' font-size="11"'))
        parts += draw(node.inner, x + PAD, y + HEADER, ran)
    else:
        parts.append(text(middle, y + 19, label, weight))
        parts.append(text(middle, y + 36, escape(shortened(detail)), ' font-size="11"'))
    parts.append("</g>")
    return parts


def rect(
    x: float, y: float, node: Node, fill: str, stroke: str, dashed: bool = False
) -> str:
    dash = ' stroke-dasharray="5 3"' if dashed else ""
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{node.width:.1f}" '
        f'height="{node.height:.1f}" rx="6" fill="{fill}" stroke="{stroke}" '
        f'stroke-width="1.5"{dash}/>'
    )


def text(x: float, y: float, content: str, extra: str = "") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle" fill="#0f172a"'
        f"{extra}>{content}</text>"
    )
