"""Adam with named parameter groups (so the hash table, MLPs and variance can take their own learning rates)
and a state dict of plain numpy arrays, so checkpoints resume with the same moments."""
import numpy as np
import jittor as jt

from jnerf.ops.optim import adam_step_size, adam_update
from jnerf.utils.registry import OPTIMS, ConfigKeyError, closest


@OPTIMS.register_module()
class Adam(jt.nn.Adam):
    """``params``: a list of Vars, or of dicts ``{'name': str, 'params': [Var]}``; ``group_lr`` maps group names
    to their learning rates (groups not named use ``lr``). Each group keeps its base lr in ``base_lr`` for the
    schedulers.

    The update is jittor.nn.Adam's arithmetic, one fused kernel per tensor on CUDA (``jnerf.ops.optim``). Unlike
    jittor.nn.Adam, gradients do not go through persistent buffers (a copy of every gradient each step, 67 MB for
    the hash table): ``backward`` keeps them in each group's ``grads`` (adding to any not yet used) and ``step``
    consumes them."""

    def __init__(self, params, lr=1e-2, betas=(0.9, 0.99), eps=1e-15, weight_decay=0.0, group_lr=None):
        params = list(params)
        group_lr = dict(group_lr or {})
        if params and isinstance(params[0], dict):
            names = [g.get("name", str(i)) for i, g in enumerate(params)]
            for name in group_lr:
                if name not in names:
                    near = closest(name, names)
                    raise ConfigKeyError(f"optim.group_lr names group '{name}', which the model does not have."
                                         f"{f' Did you mean {near!r}?' if near else ''} Groups: {', '.join(names)}")
            groups = [dict(g, lr=group_lr.get(n, lr)) for g, n in zip(params, names)]
        else:
            groups = [dict(name="all", params=params, lr=lr)]
        for g in groups:
            g["base_lr"] = g["lr"]
        super().__init__(groups, lr, eps=eps, betas=tuple(betas), weight_decay=weight_decay)

    def backward(self, loss, retain_graph=False):
        """The gradients of ``loss`` into each group's ``grads`` (None for frozen parameters); added to those of an
        earlier ``backward`` that no ``step`` has used yet (gradient accumulation, as in jittor.nn.Optimizer)."""
        trained = [p for g in self.param_groups for p in g["params"] if not p.is_stop_grad()]
        jt.sync(trained)  # as jittor.nn.Optimizer: run the previous update before building this backward
        grads = iter(jt.grad(loss, trained, retain_graph))
        for g in self.param_groups:
            new = [None if p.is_stop_grad() else next(grads).stop_grad() for p in g["params"]]
            pending = g.get("grads") or [None] * len(new)
            g["grads"] = [n if old is None or n is None else old + n for old, n in zip(pending, new)]

    def step(self, loss=None, retain_graph=False):
        """Backward of ``loss`` (when given), then one Adam update of every trained parameter."""
        self.pre_step(loss, retain_graph)
        if not any(g.get("grads") for g in self.param_groups):
            return self.post_step()  # nothing since the last step: no update, and the step count stays
        self.n_step += 1  # counts updates (Adam's bias correction), not backward calls
        for g in self.param_groups:
            beta1, beta2 = g.get("betas", self.betas)
            step_size = adam_step_size(g.get("lr", self.lr), beta1, beta2, self.n_step)
            eps, weight_decay = g.get("eps", self.eps), g.get("weight_decay", self.weight_decay)
            for p, grad, v, m in zip(g["params"], g.get("grads", []), g["values"], g["m"]):
                if p.is_stop_grad() or grad is None:
                    continue
                p_new, m_new, v_new = adam_update(p, grad, m, v, step_size, beta1, beta2, eps, weight_decay)
                p.update(p_new)
                m.update(m_new)
                v.update(v_new)
            g["grads"] = []  # consumed: a later step without backward updates nothing
        self.post_step()

    def state_dict(self):
        return dict(n_step=int(self.n_step),
                    groups=[dict(lr=float(g["lr"]), base_lr=float(g["base_lr"]),
                                 values=[v.numpy() for v in g["values"]], m=[m.numpy() for m in g["m"]])
                            for g in self.param_groups])

    def load_state_dict(self, state):
        if len(state["groups"]) != len(self.param_groups):
            raise ValueError(f"optimizer state has {len(state['groups'])} parameter groups, "
                             f"the model has {len(self.param_groups)}")
        self.n_step = state["n_step"]
        for g, s in zip(self.param_groups, state["groups"]):
            g["lr"], g["base_lr"] = s["lr"], s["base_lr"]
            for var, arr in zip(g["values"], s["values"]):
                var.update(jt.array(np.asarray(arr)).cast(var.dtype))
            for var, arr in zip(g["m"], s["m"]):
                var.update(jt.array(np.asarray(arr)).cast(var.dtype))
