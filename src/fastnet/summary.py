"""The Keras-style table of ``model.summary()``: layer (type), output shape, params, connected to."""

from __future__ import annotations


def _fmt_shape(shape) -> str:
    if shape is None:
        return "?"
    if isinstance(shape, list):
        return ", ".join(_fmt_shape(s) for s in shape)
    return "(None" + "".join(f", {'?' if d is None else d}" for d in shape) + ")"


def _value_shapes(model, plan, input_shape):
    """Per value id: one sample's shape, or None where it cannot be inferred (a partial input shape)."""
    if input_shape is not None:
        given = list(input_shape) if model._multi_in else [input_shape]
    else:
        given = model.input_shape if model._multi_in else [model.input_shape]
    shapes = [None if s is None else tuple(s) for s in given] + [None] * (plan.n_values - plan.n_inputs)
    for step in plan.steps:
        ins = [shapes[i] for i in step.inputs]
        if any(s is None for s in ins):
            continue
        try:
            shapes[step.out] = step.layer.output_shape(ins if step.as_list else ins[0])
        except Exception:  # a layer that cannot infer from a partial shape
            shapes[step.out] = None
    return shapes


def summary_table(model, input_shape=None) -> str:
    plan = model._current_plan(False)
    shapes = _value_shapes(model, plan, input_shape)
    rows = []
    if type(model).__name__ != "Sequential":  # a graph lists its inputs too
        rows += [(f"{plan.labels[i]} (Input)", _fmt_shape(shapes[i]), "0", "") for i in range(plan.n_inputs)]
    counted = set()
    for step in plan.steps:
        first = id(step.layer) not in counted
        counted.add(id(step.layer))
        params = step.layer.num_params() if first else 0  # a shared layer's weights count once
        links = ", ".join(plan.labels[i] for i in step.inputs)
        rows.append((f"{step.label} ({type(step.layer).__name__})", _fmt_shape(shapes[step.out]), f"{params:,}", links))
    trainable, non_trainable = model.num_params(), model.num_params(trainable=False)
    heads = ("Layer (type)", "Output shape", "Params", "Connected to")
    widths = [max([len(h)] + [len(r[k]) for r in rows]) + 2 for k, h in enumerate(heads)]
    rule = "=" * (sum(widths) - 2)

    def line(r):
        return f"{r[0]:<{widths[0]}}{r[1]:<{widths[1]}}{r[2]:>{widths[2] - 2}}  {r[3]}".rstrip()

    lines = [f'Model: "{model.name}"', rule, line(heads), rule] + [line(r) for r in rows]
    lines += [
        rule,
        f"Total params: {trainable + non_trainable:,}",
        f"Trainable params: {trainable:,}",
        f"Non-trainable params: {non_trainable:,}",
        rule,
    ]
    return "\n".join(lines)
