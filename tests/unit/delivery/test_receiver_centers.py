"""A receiver (webhook or CAP feed) may serve one center: only that center's cells reach it; a bad center
is refused by the model, and one without cells in the grid by `gridsentinel config validate`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from gridsentinel.alerts.delivery.config import Match, Receiver
from gridsentinel.alerts.delivery.routing import receivers_for
from gridsentinel.cli import main
from gridsentinel.settings import REPO_ROOT

from .conftest import case_event

pytestmark = pytest.mark.unit
CONFIG = REPO_ROOT / "config"


def receiver(name: str, **extra: object) -> Receiver:
    return Receiver.model_validate({"name": name, "url": "http://h/", "secret": "x" * 16, **extra})


def test_only_the_centers_cells_reach_its_receivers() -> None:
    receivers = [receiver("street", center="street:320582004"), receiver("other-street", center="street:320582005"),
                 receiver("district", center="district:320582", format="cap"), receiver("city", center="city:3205"),
                 receiver("community-2", center="community:320582004002"), receiver("anyone")]
    got = [r.name for r in receivers_for(case_event(grid_code="320582004001001"), receivers)]
    assert got == ["street", "district", "city", "anyone"]
    got = [r.name for r in receivers_for(case_event(grid_code="320582005001001"), receivers)]
    assert got == ["other-street", "district", "city", "anyone"]


def test_match_still_narrows_inside_the_center() -> None:
    r = receiver("street", center="street:320582004", match={"grid_prefixes": ["320582004002"]})
    assert receivers_for(case_event(grid_code="320582004002003"), [r]) == [r]
    assert receivers_for(case_event(grid_code="320582004001003"), [r]) == []
    plain = receiver("prefixes", match=Match(grid_prefixes=("320582",)))  # without a center, as before
    assert receivers_for(case_event(grid_code="320582004001003"), [plain]) == [plain]


@pytest.mark.parametrize(("extra", "message"), [
    ({"center": "street:3205820"}, "a street center's prefix has 9 digits"),
    ({"center": "ward:320582004"}, "expected <level>:<prefix>"),
    ({"center": "street:320582004", "match": {"grid_prefixes": ["320583"]}},
     r"match.grid_prefixes \['320583'\] lie outside center street:320582004"),
])
def test_a_malformed_center_is_refused(extra: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        receiver("r", **extra)


def test_config_validate_names_a_center_without_cells(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GS_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("GS_CONFIG_DIR", str(CONFIG))
    data = yaml.safe_load((CONFIG / "receivers.yaml").read_text())
    data["receivers"][0]["center"] = "street:320582999"
    path = tmp_path / "receivers.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["config", "validate", str(path), "--kind", "receivers"]) == 1
    err = capsys.readouterr().err
    assert f"{path}: receivers.0.center: got 'street:320582999'; expected a street of config/grid.geojson " \
           "(street:320582004)" in err
    data["receivers"][0]["center"] = "street:320582004"
    path.write_text(yaml.safe_dump(data))
    assert main(["config", "validate", str(path), "--kind", "receivers"]) == 0
    assert "valid" in capsys.readouterr().out
