"""Draw the graph that produced a tensor, as Graphviz DOT text (for study).

    print(minigrad.viz.to_dot(loss))   # paste into `dot -Tpng` or an online viewer

Tensors are boxes labelled with their shape and dtype; ops are ellipses
labelled with the Function's name. Only what backward would visit is drawn.
"""


def to_dot(t, name="minigrad"):
    # the name is quoted: a bare DOT keyword ("graph", "node") there is a syntax error to dot
    lines = [f'digraph "{name}" {{', "  rankdir=LR;", "  node [fontname=monospace];"]
    seen = set()
    stack = [t]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        lines.append(f'  t{id(node)} [shape=box, label="{_label(node)}"];')
        ctx = node._ctx
        if ctx is None or ctx.inputs is None:
            continue
        lines.append(f'  f{id(ctx)} [shape=ellipse, label="{type(ctx).__name__}"];')
        lines.append(f"  f{id(ctx)} -> t{id(node)};")
        for parent in ctx.inputs:
            lines.append(f"  t{id(parent)} -> f{id(ctx)};")
            stack.append(parent)
    lines.append("}")
    return "\n".join(lines)


def _label(t):
    kind = "param" if t._ctx is None and t.requires_grad else ("const" if t._ctx is None else "")
    shape = "x".join(str(n) for n in t.shape) or "scalar"
    return f"{kind} {shape} {t.dtype}".strip()
