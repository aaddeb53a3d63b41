"""Bad input to fit_em / GMM / Prior / predict: one clear message each, before any work."""

import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import gmmflow

GOOD = np.random.default_rng(0).normal(size=(30, 2))


def _nan():
    X = GOOD.copy(); X[4, 1] = np.nan; return X


def _inf():
    X = GOOD.copy(); X[2, 0] = np.inf; return X


FIT_CASES = [
    ("nan", lambda: _nan(), ValueError, "X contains 1 non-finite value(s); the first is NaN at row 4, feature 'x1'"),
    ("inf", lambda: _inf(), ValueError, "the first is inf at row 2, feature 'x0'"),
    ("1-D", lambda: GOOD[:, 0], ValueError, "X must be 2-D (n_samples, n_features); got 1-D with shape (30,). For one feature use X.reshape(-1, 1)."),
    ("3-D", lambda: GOOD.reshape(5, 6, 2), ValueError, "X must be 2-D (n_samples, n_features); got 3-D"),
    ("zero features", lambda: np.empty((5, 0)), ValueError, "X has 0 features (shape (5, 0))"),
    ("empty", lambda: np.empty((0, 2)), ValueError, "X is empty: it has 0 rows"),
    ("strings", lambda: np.array([["a", "b"]] * 5), TypeError, "X must be numeric (integer or float), got dtype <U1"),
    ("object", lambda: np.array([[1, None]] * 5, dtype=object), TypeError, "X must be numeric (integer or float), got dtype object"),
    ("complex", lambda: GOOD + 1j, TypeError, "X is complex (complex128)"),
    ("df text column", lambda: pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x", "y", "z"]}), TypeError, "X (column 'b') must be numeric"),
    ("fewer rows than K", lambda: GOOD[:2], ValueError, "X has 2 row(s) but n_components=3"),
    ("unnamed DataArray dims", lambda: xr.DataArray(GOOD), ValueError, "gmmflow does not guess which is which"),
]


@pytest.mark.parametrize("name,make,exc,message", FIT_CASES, ids=[c[0] for c in FIT_CASES])
def test_fit_em_rejects_bad_data(name, make, exc, message):
    with pytest.raises(exc, match=re.escape(message)):
        gmmflow.fit_em(gmmflow.GMM(3), make(), seed=0)


OPTION_CASES = [
    ({"n_init": 0}, ValueError, "n_init must be >= 1, got 0"),
    ({"max_iter": 0}, ValueError, "max_iter must be >= 1, got 0"),
    ({"tol": -1.0}, ValueError, "tol must be >= 0.0, got -1.0"),
    ({"init": "kmeans"}, ValueError, "init must be one of 'kmeans++', 'random', 'random_from_data', 'hc', "
                                     "'hc+kmeans++', 'hc+random', 'hc+random_from_data' or a dict"),
    ({"init": {"centers": 1}}, ValueError, "init has unknown key(s) ['centers']"),
    ({"init": {"means": np.zeros((2, 2))}}, ValueError, "init['means'] must have shape (3, 2) for n_components=3, 2 feature(s)"),
    ({"init": {"weights": [0.5, 0.5, 0.5]}}, ValueError, "init['weights'] must be positive and sum to 1"),
    ({"init": {"covariances": np.array([np.eye(2), np.eye(2), [[1, 2], [2, 1]]])}}, ValueError,
     "init['covariances']: covariance of component 2 is not positive definite"),
    ({"init": {"covariances": np.ones((3, 3))}}, ValueError, "init['covariances'] must have shape (3, 2, 2)"),
    ({"sample_weight": np.ones(3)}, ValueError, "sample_weight must have shape (30,)"),
    ({"sample_weight": -np.ones(30)}, ValueError, "sample_weight must be finite and >= 0"),
    ({"seed": -1}, ValueError, "seed must be an integer from 0 to 2**64 - 1 = 18446744073709551615"),
    ({"seed": 2**64}, ValueError, "seed must be an integer from 0 to 2**64 - 1 = 18446744073709551615 (every "
                                  "sampler takes 64 bits), got 18446744073709551616."),
]


@pytest.mark.parametrize("kwargs,exc,message", OPTION_CASES, ids=[str(c[0])[:40] for c in OPTION_CASES])
def test_fit_em_rejects_bad_options(kwargs, exc, message):
    with pytest.raises(exc, match=re.escape(message)):
        gmmflow.fit_em(gmmflow.GMM(3), GOOD, **kwargs)


MODEL_CASES = [
    (lambda: gmmflow.GMM(0), ValueError, "n_components must be >= 1, got 0"),
    (lambda: gmmflow.GMM(2.5), TypeError, "n_components must be an integer >= 1, got float 2.5"),
    (lambda: gmmflow.GMM(2, "banana"), ValueError, "covariance_type must be one of 'full', 'tied', 'diag', 'spherical'; got 'banana'"),
    (lambda: gmmflow.GMM(2, prior="flat"), ValueError, "prior must be 'default', 'mclust', None or a gmmflow.Prior"),
    (lambda: gmmflow.GMM(2, reg_covar=-1), ValueError, "reg_covar must be a finite number >= 0"),
    (lambda: gmmflow.Prior(alpha=0.5), ValueError, "Prior alpha (Dirichlet concentration) must be >= 1"),
    (lambda: gmmflow.Prior(shrinkage=0.0), ValueError, "Prior shrinkage (kappa_P) must be > 0, got 0.0"),
    (lambda: gmmflow.Prior(dof=-1.0), ValueError, "Prior dof (nu_P) must be > 0"),
    (lambda: gmmflow.Prior(mean=[np.nan, 1]), ValueError, "Prior mean must be finite"),
]


@pytest.mark.parametrize("make,exc,message", MODEL_CASES, ids=[c[2][:30] for c in MODEL_CASES])
def test_model_and_prior_validated_at_construction(make, exc, message):
    with pytest.raises(exc, match=re.escape(message)):
        make()


PRIOR_VS_DATA = [
    ("full", gmmflow.Prior(dof=0.5), "Prior dof (nu_P) must be > d - 1 = 1 for an InverseWishart in 2 dimensions, got 0.5"),
    ("full", gmmflow.Prior(scale=[[1.0, 2.0], [2.0, 1.0]]), "Prior scale (Lambda_P) must be symmetric positive definite; it is not positive definite"),
    ("tied", gmmflow.Prior(scale=[[1.0, 0.5], [0.0, 1.0]]), "it is not symmetric"),
    ("full", gmmflow.Prior(scale=np.eye(3)), "Prior scale (Lambda_P) must be a (2, 2) matrix"),
    ("diag", gmmflow.Prior(scale=[1.0, -1.0]), "Prior scale (s2_P) must be > 0"),
    ("spherical", gmmflow.Prior(scale=[1.0, 1.0]), "Prior scale (s2_P) must have shape () for covariance_type='spherical'"),
    ("full", gmmflow.Prior(mean=[0.0]), "Prior mean must have shape (2,) (one value per feature), got (1,)"),
]


@pytest.mark.parametrize("t,prior,message", PRIOR_VS_DATA, ids=[c[2][:30] for c in PRIOR_VS_DATA])
def test_prior_checked_against_data_before_fitting(t, prior, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        gmmflow.fit_em(gmmflow.GMM(2, t, prior=prior), GOOD, seed=0)


def test_model_must_be_a_gmm():
    with pytest.raises(TypeError, match=re.escape("model must be a gmmflow.GMM, got int")):
        gmmflow.fit_em(3, GOOD)


def test_predict_with_wrong_feature_count():
    idata = gmmflow.fit_em(gmmflow.GMM(2), GOOD, seed=0)
    with pytest.raises(ValueError, match=re.escape("X has 3 feature(s) but the mixture was fitted on 2 (x0, x1)")):
        gmmflow.predict(idata, np.zeros((4, 3)))
    with pytest.raises(ValueError, match=re.escape("X contains 1 non-finite value(s)")):
        gmmflow.predict_proba(idata, _nan())
