"""From a graph description to the list of steps a model runs, with the build-time checks.

A graph is described the same way whether it was written with symbolic tensors or read from a
saved file: input names, a list of nodes ``(layer, refs, as_list)`` and output refs, where a ref
is ``("input", i)`` or ``("node", j)``. :func:`validate` raises a ValueError naming the layers for
every malformed graph (cycle, output used before it is computed, input no output depends on, node
that feeds no output); :func:`build_plan` turns a valid description into a :class:`Plan`:
value ids (inputs first, then one per node), Keras-style unique layer names, and which values can
be dropped after which step. :func:`fuse_plan` is the compile-time rewrite that merges a
Dense/Conv2D node with the activation node that is its only consumer.
"""

from __future__ import annotations

from .graph import SymbolicTensor, describe

__all__ = ["trace", "validate", "build_plan", "fuse_plan", "auto_names", "Step", "Plan"]


def trace(inputs: list[SymbolicTensor], outputs: list[SymbolicTensor], where: str):
    """Collect the nodes between ``inputs`` and ``outputs`` in a valid run order.

    Returns ``(nodes, output_refs)`` in the description format above.
    """
    index_of_input = {id(t): i for i, t in enumerate(inputs)}
    order, seen = [], {}
    for out in outputs:
        stack = [(out, False)]
        while stack:  # iterative post-order DFS: a node after every node it reads
            tensor, done = stack.pop()
            node = tensor.node
            if node is None:
                if id(tensor) not in index_of_input:
                    raise ValueError(
                        f"{where}: disconnected output: output {describe(out)} depends on input {describe(tensor)}, "
                        "which is not among the model's inputs"
                    )
                continue
            if id(node) in seen:
                continue
            if done:
                seen[id(node)] = len(order)
                order.append(node)
                continue
            stack.append((tensor, True))
            stack.extend((t, False) for t in reversed(node.inputs))

    def ref(tensor):
        if tensor.node is None:
            return ("input", index_of_input[id(tensor)])
        return ("node", seen[id(tensor.node)])

    nodes = [(n.layer, [ref(t) for t in n.inputs], n.as_list) for n in order]
    return nodes, [ref(t) for t in outputs]


def _cycle(nodes, start):
    """A cycle through node ``start`` following input refs, as a list of node indices, or None."""
    path, on_path = [], set()

    def visit(j):
        if j in on_path:
            return path[path.index(j) :] + [j]
        path.append(j)
        on_path.add(j)
        for kind, k in nodes[j][1]:
            if kind == "node":
                found = visit(k)
                if found:
                    return found
        path.pop()
        on_path.discard(j)
        return None

    return visit(start)


def validate(input_names: list[str], nodes: list, outputs: list, where: str, layer_names=None) -> None:
    """Raise a ValueError naming the layers when the description is not a valid graph."""
    name = layer_names or (lambda layer: layer.name)
    n_in, n_nodes = len(input_names), len(nodes)

    def check_ref(r, what):
        ok = isinstance(r, (tuple, list)) and len(r) == 2 and isinstance(r[1], int) and not isinstance(r[1], bool)
        if not ok or r[0] not in ("input", "node") or not 0 <= r[1] < (n_in if r[0] == "input" else n_nodes):
            raise ValueError(f"{where}: {what} refers to {r!r}, which is no input or node of this graph")

    if not outputs:
        raise ValueError(f"{where}: a model needs at least one output")
    for j, (layer, refs, _) in enumerate(nodes):
        if not refs:
            raise ValueError(f"{where}: node {j} ({name(layer)}) has no inputs")
        for r in refs:
            check_ref(r, f"node {j} ({name(layer)})")
            if r[0] == "node" and r[1] >= j:
                cycle = _cycle(nodes, j)
                if cycle:
                    chain = " -> ".join(name(nodes[k][0]) for k in cycle)
                    raise ValueError(f"{where}: the graph has a cycle: {chain}")
                raise ValueError(
                    f"{where}: node {j} ({name(layer)}) uses the output of node {r[1]} ({name(nodes[r[1]][0])}) "
                    "before it is computed"
                )
    for r in outputs:
        check_ref(r, "an output")
    used_inputs, reached = set(), set()
    stack = [r for r in outputs]
    while stack:
        kind, k = stack.pop()
        if kind == "input":
            used_inputs.add(k)
        elif k not in reached:
            reached.add(k)
            stack.extend(nodes[k][1])
    for i, input_name in enumerate(input_names):
        if i not in used_inputs:
            raise ValueError(f"{where}: no output depends on input {input_name!r}; remove it or use it")
    for j, (layer, _, _) in enumerate(nodes):
        if j not in reached:
            raise ValueError(f"{where}: node {j} ({name(layer)}) is disconnected: no output depends on it")


def _default_name(layer) -> str:
    return getattr(layer, "default_name", None) or type(layer).__name__


def _given_name(layer):
    """The name a user gave (to the constructor or by assigning ``layer.name``), else None."""
    return None if layer.auto_named and layer.name == _default_name(layer) else layer.name


def auto_names(layers, where: str) -> dict[int, str]:
    """Keras-style unique names by ``id(layer)``: a layer's own name when it was given one, else
    its lowercased class name with a suffix (``dense``, ``dense_1``...). Two layers given the same
    name are an error (their weights would share a key)."""
    names, taken = {}, {}
    for layer in layers:
        if _given_name(layer) is not None:
            other = taken.get(layer.name)
            if other is not None and other is not layer:
                raise ValueError(
                    f"{where}: two different layers are named {layer.name!r}; names must be unique in a model"
                )
            taken[layer.name] = layer
            names[id(layer)] = layer.name
    for layer in layers:
        if id(layer) in names:
            continue
        base = _default_name(layer).lower()
        candidate, k = base, 0
        while candidate in taken:
            k += 1
            candidate = f"{base}_{k}"
        taken[candidate] = layer
        names[id(layer)] = candidate
    return names


class Step:
    """One layer call of a plan: reads value ids ``inputs``, writes value id ``out``.

    ``activation`` is the ``(name, alpha)`` pair of a fused activation layer and ``pool`` a fused
    pooling layer; ``fused`` holds those that are set, as the keyword arguments of the layer's
    ``_forward``. ``fused_from`` is the labels of the layers fused into this step (a tuple, empty
    when none); ``free`` lists values no later step reads.
    """

    __slots__ = (
        "layer", "name", "label", "inputs", "as_list", "out", "activation", "pool", "fused", "fused_from",
        "has_params", "free",
    )  # fmt: skip

    def __init__(self, layer, name, label, inputs, as_list, out, activation=None, fused_from=(), pool=None):
        self.layer, self.name, self.label = layer, name, label
        self.inputs, self.as_list, self.out = tuple(inputs), as_list, out
        self.activation, self.pool, self.fused_from = activation, pool, tuple(fused_from)
        self.fused = {k: v for k, v in (("activation", activation), ("pool", pool)) if v is not None}
        self.has_params = bool(layer.params)
        self.free = ()


class Plan:
    """What a model runs: steps in order, ``n_inputs`` input values, output value ids, and the
    label of every value (for summaries and activations)."""

    def __init__(self, steps, n_inputs, outputs, labels):
        self.steps, self.n_inputs, self.outputs, self.labels = steps, n_inputs, tuple(outputs), labels
        self.n_values = len(labels)
        self._needs_grad = {}
        last = {}
        for k, step in enumerate(steps):
            for i in step.inputs:
                last[i] = k
        keep = set(self.outputs)
        for step in steps:
            step.free = ()
        for i, k in last.items():
            if i not in keep:
                steps[k].free += (i,)

    def needs_grad(self, need_dx: bool) -> list[bool]:
        """Per value id: does a gradient have to flow into it (it depends on a parameter, or on an
        input whose gradient is wanted)? Steps whose inputs need none skip their dx."""
        mask = self._needs_grad.get(need_dx)
        if mask is None:
            mask = [need_dx] * self.n_inputs + [False] * (self.n_values - self.n_inputs)
            for step in self.steps:
                mask[step.out] = step.has_params or any(mask[i] for i in step.inputs)
            self._needs_grad[need_dx] = mask
        return mask


def build_plan(input_names, nodes, outputs, names: dict[int, str]) -> Plan:
    """The unfused plan of a validated description; ``names`` maps ``id(layer)`` to its name."""
    n_in = len(input_names)
    labels = list(input_names)
    uses: dict[int, int] = {}
    steps = []
    for j, (layer, refs, as_list) in enumerate(nodes):
        name = names[id(layer)]
        k = uses.get(id(layer), 0)
        uses[id(layer)] = k + 1
        label = name if k == 0 else f"{name}:{k}"  # the k-th reuse of a shared layer
        labels.append(label)
        ids = [r[1] if r[0] == "input" else n_in + r[1] for r in refs]
        steps.append(Step(layer, name, label, ids, as_list, n_in + j))
    out_ids = [r[1] if r[0] == "input" else n_in + r[1] for r in outputs]
    return Plan(steps, n_in, out_ids, labels)


def fuse_plan(plan: Plan) -> Plan:
    """The compile-time rewrite: a step (Dense, Conv2D, BatchNorm, Add: whatever layer
    ``accepts_activation``) whose only consumer is a fusable activation step becomes one step
    that passes the activation to the layer; the activation step goes. Then a Conv2D step (with its
    ReLU or without) whose only consumer is a pooling step it ``accepts_pool`` takes that pool too."""
    consumers: dict[int, int] = {}
    for step in plan.steps:
        for i in step.inputs:
            consumers[i] = consumers.get(i, 0) + 1
    for i in plan.outputs:
        consumers[i] = consumers.get(i, 0) + 1
    producer = {step.out: step for step in plan.steps}
    merged, dropped = {}, set()
    for step in plan.steps:
        fusable = getattr(step.layer, "fusable", None) if not step.as_list else None
        src = producer.get(step.inputs[0]) if fusable is not None else None
        if (
            src is not None
            and src.activation is None
            and consumers[src.out] == 1
            and src.layer.accepts_activation(fusable[0])
        ):
            merged[id(src)] = Step(
                src.layer, src.name, src.label, src.inputs, src.as_list, step.out, tuple(fusable), (step.label,)
            )
            dropped.add(id(step))
    steps = [merged.get(id(s)) or Step(s.layer, s.name, s.label, s.inputs, s.as_list, s.out) for s in plan.steps]
    steps = [s for s, orig in zip(steps, plan.steps, strict=True) if id(orig) not in dropped]
    return Plan(_fuse_pools(steps, consumers), plan.n_inputs, plan.outputs, plan.labels)


def _fuse_pools(steps: list, consumers: dict) -> list:
    """The second rewrite of :func:`fuse_plan`: a pooling step goes into the step that produces its
    input when that step's layer ``accepts_pool`` it and nothing else reads that value (``consumers``:
    readers per value id)."""
    producer = {step.out: step for step in steps}
    merged, dropped = {}, set()
    for step in steps:
        if step.as_list:
            continue
        src = producer.get(step.inputs[0])
        accepts = getattr(src.layer, "accepts_pool", None) if src is not None else None
        if accepts is not None and src.pool is None and consumers[src.out] == 1 and accepts(step.layer):
            merged[id(src)] = Step(
                src.layer, src.name, src.label, src.inputs, src.as_list, step.out,
                src.activation, src.fused_from + (step.label,), step.layer,
            )  # fmt: skip
            dropped.add(id(step))
    return [merged.get(id(s), s) for s in steps if id(s) not in dropped]
