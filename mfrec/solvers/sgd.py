"""Stochastic gradient descent: one rating at a time, in a fresh random order each epoch."""

from __future__ import annotations

from mfrec.kernels.optim import OPT_CONSTANT
from mfrec.kernels.sgd import sgd_epoch
from mfrec.solvers.gradient import GradientSolver


class SGD(GradientSolver):
    """Classic SGD (Funk/Koren) on J; see docs/math.md for the exact update.

    With ``constant``/``decay`` it runs the dedicated kernel `sgd_epoch`; the adaptive
    optimizers run the mini-batch kernel with batch size 1, which is the same algorithm with
    per-rating optimizer steps on the touched rows.
    """

    name = "sgd"
    default_lr = 0.02
    default_epochs = 20
    default_optimizer = "constant"

    def run_epoch(self, epoch: int) -> int:
        """One pass over the ratings in a new random order; returns the number of ratings."""
        f, t, p = self.factors, self.train, self.params
        order = self.rng.permutation(len(t))
        if self.opt.code != OPT_CONSTANT:
            self._minibatch_epoch(order, 1, epoch)
            return len(t)
        cast = f.P.dtype.type
        sgd_epoch(
            t.users,
            t.items,
            t.ratings,
            order,
            f.P,
            f.Q,
            f.bu,
            f.bi,
            cast(f.mu),
            cast(self.epoch_lr(epoch)),
            cast(p.reg),
            cast(p.reg_bias),
            f.use_bias,
        )
        return len(t)
