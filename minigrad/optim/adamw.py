"""AdamW and Adam with PyTorch's semantics (torch.optim).

The update itself is one in-place kernel (minigrad.kernels.adamw_update). The
optimizer state is plain ndarrays plus JSON-able scalars, so it is saved as
safetensors + JSON (minigrad.nn.state.split_tree), never pickle.
"""
import numpy as np

from minigrad import kernels


class AdamW:
    """torch.optim.AdamW: Adam with bias correction and decoupled weight decay,
    p <- p * (1 - lr*wd) before the Adam step.

    `params` is an iterable of Parameters or of dicts {"params": [...], <overrides>}
    (param groups); a trainer may set group["lr"] between steps.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        _check_hyper(lr, betas, eps, weight_decay)
        self.defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups = [self._make_group(g) for g in groups]
        all_params = [p for g in self.param_groups for p in g["params"]]
        if len({id(p) for p in all_params}) != len(all_params):
            raise ValueError(f"{type(self).__name__}: a parameter appears in more than one group")
        self.state = {}  # id(param) -> {"step": int, "exp_avg": ndarray, "exp_avg_sq": ndarray}

    def _make_group(self, group):
        unknown = set(group) - set(self.defaults) - {"params"}
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown param group option(s) {sorted(unknown)}")
        group = {**self.defaults, **group, "params": list(group["params"])}
        group["betas"] = tuple(group["betas"])
        _check_hyper(group["lr"], group["betas"], group["eps"], group["weight_decay"])
        return group

    def zero_grad(self):
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self, grad_scale=1.0):
        """One update of every parameter that has a gradient (others are skipped, as torch).
        A group whose parameters are one span of a flat buffer (minigrad/nn/flat.py) is
        updated by one kernel call over the span: the same arithmetic, element by element.

        grad_scale multiplies every gradient as the update reads it (the gradients stay as
        they are), as torch's fused optimizers take one: gradient clipping's factor comes in
        this way without a pass of its own over the gradients (gpt/train/step.py); the same
        numbers as scaling them first (clip_grad_norm_) and then stepping."""
        for group in self.param_groups:
            if not self._step_flat(group, grad_scale):
                for p in group["params"]:
                    if p.grad is not None:
                        state = self._state_of(p)
                        state["step"] += 1
                        self._update(p.data, p.grad, state["exp_avg"], state["exp_avg_sq"], group, state["step"],
                                     grad_scale)

    def _update(self, data, grad, m, v, group, step, grad_scale):
        grad, decay, grad_scale = self._grad_and_decay(data, grad, group, grad_scale)
        kernels.adamw_update(data, grad, m, v, group["lr"], *group["betas"], group["eps"], decay, step, grad_scale)

    def _grad_and_decay(self, data, grad, group, grad_scale):
        """AdamW decays the weights directly (decoupled), so the gradient goes in untouched."""
        return grad, group["weight_decay"], grad_scale

    def _state_of(self, p):
        state = self.state.get(id(p))
        if state is None:
            state = self.state[id(p)] = {"step": 0, "exp_avg": np.zeros_like(p.data),
                                         "exp_avg_sq": np.zeros_like(p.data)}
        return state

    def _step_flat(self, group, grad_scale):
        """The whole group in one call when it is one contiguous span of a flat buffer whose
        parameters all have gradients and share one step count; False to go tensor by tensor."""
        params = group["params"]
        home = getattr(params[0], "_flat", None) if params else None
        span = home[0].contiguous_span(params) if home is not None else None
        steps = {self._state_of(p)["step"] for p in params} if span else ()
        if len(steps) != 1:
            return False
        flat, (lo, hi) = home[0], span
        m, v = self._flat_moments(flat, params)
        for p in params:
            self.state[id(p)]["step"] += 1
        self._update(flat.data[lo:hi], flat.grad[lo:hi], m[lo:hi], v[lo:hi], group, steps.pop() + 1, grad_scale)
        return True

    def _flat_moments(self, flat, params):
        """Moment buffers laid out like flat.data; each parameter's exp_avg / exp_avg_sq become
        views of them (keeping their values), so state_dict still sees one array per tensor."""
        moments = self.__dict__.setdefault("_moments", {})
        if id(flat) not in moments:
            moments[id(flat)] = (np.zeros_like(flat.data), np.zeros_like(flat.data))
        m, v = moments[id(flat)]
        for p in params:
            _, lo, hi = p._flat
            state = self.state[id(p)]
            for key, buf in (("exp_avg", m), ("exp_avg_sq", v)):
                if state[key].base is not buf:
                    buf[lo:hi] = state[key].reshape(-1)
                    state[key] = buf[lo:hi].reshape(p.shape)
        return m, v

    # ---- exact resume -------------------------------------------------------------------

    def state_dict(self):
        """{"state": {index: {"step", "exp_avg", "exp_avg_sq"}}, "param_groups": [...]}, with
        parameters numbered in group order as in torch. Arrays are copies."""
        groups, state, index = [], {}, 0
        for group in self.param_groups:
            ids = list(range(index, index + len(group["params"])))
            groups.append({**{k: v for k, v in group.items() if k != "params"},
                           "betas": list(group["betas"]), "params": ids})
            for i, p in zip(ids, group["params"]):
                if id(p) in self.state:
                    s = self.state[id(p)]
                    state[i] = {"step": s["step"], "exp_avg": s["exp_avg"].copy(),
                                "exp_avg_sq": s["exp_avg_sq"].copy()}
            index += len(ids)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and moments; groups must have the same sizes as now."""
        groups = state_dict["param_groups"]
        sizes = [len(g["params"]) for g in self.param_groups]
        if [len(g["params"]) for g in groups] != sizes:
            raise ValueError(f"load_state_dict: saved param group sizes "
                             f"{[len(g['params']) for g in groups]} != this optimizer's {sizes}")
        params = [p for g in self.param_groups for p in g["params"]]
        for group, saved in zip(self.param_groups, groups):
            for key in self.defaults:
                group[key] = tuple(saved[key]) if key == "betas" else saved[key]
        self.state = {}
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            for key in ("exp_avg", "exp_avg_sq"):
                if np.shape(s[key]) != p.shape:
                    raise ValueError(f"load_state_dict: state {i} {key} has shape {np.shape(s[key])} "
                                     f"but the parameter has shape {p.shape}")
            self.state[id(p)] = {"step": int(s["step"]),
                                 "exp_avg": np.array(s["exp_avg"], dtype=p.dtype),
                                 "exp_avg_sq": np.array(s["exp_avg_sq"], dtype=p.dtype)}


class Adam(AdamW):
    """Adam: weight_decay defaults to 0. A non-zero weight_decay is torch.optim.Adam's
    L2 penalty (wd * p added to the gradient, so it passes through the moments),
    not AdamW's decoupled decay."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def _grad_and_decay(self, data, grad, group, grad_scale):
        wd, grad = group["weight_decay"], grad * grad.dtype.type(grad_scale) if grad_scale != 1 else grad
        return (grad + wd * data if wd else grad), 0.0, 1.0


def _check_hyper(lr, betas, eps, weight_decay):
    if not lr >= 0:
        raise ValueError(f"invalid learning rate lr={lr!r}: must be >= 0")
    if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
        raise ValueError(f"invalid betas={tuple(betas)!r}: need two values in [0, 1)")
    if not eps >= 0:
        raise ValueError(f"invalid eps={eps!r}: must be >= 0")
    if not weight_decay >= 0:
        raise ValueError(f"invalid weight_decay={weight_decay!r}: must be >= 0")
