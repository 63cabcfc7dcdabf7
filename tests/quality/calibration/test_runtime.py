"""The numpy runtime reproduces what scikit-learn fitted, and the model file round-trips exactly."""

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.preprocessing import QuantileTransformer

from quality.calibration import fit as F
from quality.calibration.model import from_bytes
from quality.calibration.runtime import QuantileNormal, Scale
from quality.errors import ConfigError


def data(n=300, f=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, f))
    x[:, 3] = np.round(x[:, 3])  # ties
    return x, x[:, 0] ** 2 + np.sin(x[:, 1]) + 0.1 * rng.normal(size=n)


def test_exported_trees_predict_exactly_like_scikit_learn_including_missing_values():
    x, y = data()
    x[::7, 2] = np.nan
    model = HistGradientBoostingRegressor(random_state=0, **F.TREE_PARAMS).fit(x, y)
    trees = F.export_trees(model)
    test, _ = data(200, seed=1)
    test[::3, 2] = np.nan
    np.testing.assert_allclose(trees.predict(test), model.predict(test), rtol=0, atol=1e-12)
    assert len(trees.roots) == model.n_iter_


def test_quantile_normal_matches_scikit_learns_quantile_transformer():
    x, _ = data(500)
    qn = QuantileNormal.fit(x, 200)
    ref = QuantileTransformer(n_quantiles=200, output_distribution="normal").fit(x)
    test, _ = data(300, seed=2)
    test *= 1.5  # some values beyond the fitted range
    np.testing.assert_allclose(qn(test), ref.transform(test), atol=1e-8)


def test_exported_svr_predicts_like_the_fitted_svr():
    x, y = data()
    svr, sk_predict = F.fit_svr(x, y)
    test, _ = data(100, seed=3)
    np.testing.assert_allclose(svr.predict(test), sk_predict(test), atol=1e-9)
    assert np.corrcoef(svr.predict(x), y)[0, 1] > 0.5  # it learned something


def test_scale_is_piecewise_linear_clamped_and_validated():
    scale = Scale((1.0, 2.0, 4.0), (0.0, 5.0, 10.0))
    assert scale(1.5) == pytest.approx(2.5) and scale(3.0) == pytest.approx(7.5)
    assert scale(-3.0) == 0.0 and scale(9.0) == 10.0
    with pytest.raises(ValueError, match="increase"):
        Scale((1.0, 1.0), (0.0, 10.0))
    s = F.fit_scale(np.linspace(0, 4, 101))
    assert s.score == tuple(score for _, score in F.SCALE_PERCENTILES)
    assert s(np.percentile(np.linspace(0, 4, 101), 90)) == pytest.approx(8.0)  # the A bound sits at the 90th pct


def test_model_bytes_are_deterministic_and_round_trip(synthetic_records, small_codebooks):
    records = synthetic_records
    names = list(records[0].features)
    cbs = F.codebooks_for(records, range(len(records)), 0)
    enc = F.encode_records(records, [cbs])[0]
    base = F.base_matrix(records, names)
    mos = np.array([r.mos for r in records])
    model = F.fit_model(base, enc, mos, cbs, meta={"name": "t", "feature_names": names,
                                                   "dimensions": F.DIMENSIONS})  # fmt: skip
    again = F.fit_model(base, enc, mos, F.codebooks_for(records, range(len(records)), 0),
                        meta={"name": "t", "feature_names": names, "dimensions": F.DIMENSIONS})  # fmt: skip
    data_ = model.to_bytes()
    assert data_ == again.to_bytes()  # same inputs and seed: the same bytes
    loaded = from_bytes(data_)
    for dim, pred in model.predict_mos(base, enc).items():  # support vectors are stored as float32: ~1e-8 apart
        np.testing.assert_allclose(loaded.predict_mos(base, enc)[dim], pred, rtol=0, atol=1e-6)
    assert loaded.sha256 and loaded.identity().startswith("t sha256:")


def test_a_corrupt_model_file_is_a_clear_config_error():
    with pytest.raises(ConfigError, match=r"not a readable calibration model.*COMFY_QUALITY_CALIBRATION"):
        from_bytes(b"PK\x03\x04 not really a zip")
