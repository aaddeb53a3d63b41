"""Assignments: EM responsibilities against posterior probabilities, and assignment uncertainty."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from gmmflow.plots.data_access import observed
from gmmflow import schema as S
from gmmflow.plots.registry import register
from gmmflow.plots.geometry import principal_axes, project_rows
from gmmflow.results.from_idata import feature_names, model_from_idata, posterior_assignment, stored_responsibilities
from gmmflow.workflows.compare import check_comparable


def _plane(X: np.ndarray):
    """2-D view of the data for colouring: the data itself, or its first principal components."""
    if X.shape[1] <= 2:
        return X, None
    centre, basis = principal_axes(X)
    return project_rows(X, basis, centre), ("principal component 1", "principal component 2")


@register("assignments", order=80, needs=(S.POSTERIOR, S.POSTERIOR_ASSIGNMENT, S.OBSERVED_DATA),
          caption="Left: each observation's EM responsibility against its posterior assignment probability, per "
                  "component. Right: the data coloured by posterior assignment uncertainty (1 - largest "
                  "probability). Look for points on the diagonal on the left. Points off it, and bright points on "
                  "the right, are observations between components whose label is uncertain.")
def plot_assignments(idata, *, axes=None):
    """EM responsibilities against posterior assignment probabilities, and assignment uncertainty.

    Left: one point per (observation, component), EM responsibility against
    the posterior probability, on the identity line when they agree. Right:
    the data coloured by ``1 - max_k P(z_i = k | data)`` (posterior).
    """
    check_comparable(idata, "assignments")
    em = stored_responsibilities(idata)
    post = posterior_assignment(idata)
    X = observed(idata)
    features = feature_names(idata)
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    left, right = axes
    n_components = model_from_idata(idata).n_components  # a noise model's column K is the noise's
    for k in range(em.shape[1]):
        noise = k == n_components
        left.scatter(em[:, k], post[:, k], s=10, alpha=0.6, color="0.45" if noise else f"C{k % 10}",
                     label="noise" if noise else f"component {k}", gid=f"assignment-{k}")
    left.plot([0, 1], [0, 1], color="0.5", lw=0.8, gid="identity")
    left.set_xlabel("EM responsibility")
    left.set_ylabel("posterior assignment probability")
    left.set_title("Assignments: EM against posterior")
    left.legend(fontsize=8)
    uncertainty = 1.0 - post.max(axis=1)
    plane, names = _plane(X)
    if plane.shape[1] == 1:
        plane = np.column_stack([plane[:, 0], np.random.default_rng(0).uniform(-0.3, 0.3, len(plane))])
        names = (features[0], "")
        right.set_yticks([])
    names = names or tuple(features)
    points = right.scatter(plane[:, 0], plane[:, 1], c=uncertainty, cmap="viridis", s=12,
                           vmin=0.0, vmax=max(float(uncertainty.max()), 1e-12), gid="uncertainty")
    right.figure.colorbar(points, ax=right, label="1 - max posterior probability")
    right.set_xlabel(names[0])
    right.set_ylabel(names[1])
    right.set_title("Assignment uncertainty (posterior)")
    return np.asarray(axes)
