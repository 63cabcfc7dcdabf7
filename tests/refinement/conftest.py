import pytest

from quality.scorer import Scorer
from quality.settings import QualitySettings


@pytest.fixture(scope="session")
def offline_scorer(tmp_path_factory):
    """The real scorer, offline: BRISQUE, NIQE and edge density run; deep metrics report unavailable."""
    weights = tmp_path_factory.mktemp("no-weights")
    scorer = Scorer(QualitySettings(offline=True, device="cpu", weights_dir=weights))
    yield scorer
    scorer.close()
