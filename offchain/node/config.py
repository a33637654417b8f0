"""A node's configuration file (JSON), as a provider would write it for its own machine.

Example::

    {
      "rpc_url": "http://127.0.0.1:8545",
      "market": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
      "keys_file": "keys.json",
      "host": "127.0.0.1",
      "port": 0,
      "datasets": {"wdbc": {"path": "wdbc-part.csv"}},
      "register_stake_wei": 1000000000000000000,
      "state_dir": "state"
    }

Relative paths are resolved against the config file's directory. ``port`` 0 picks a free port.
When ``register_stake_wei`` is set and the node is not registered yet, it registers itself with
that stake (its Ethereum account must hold the funds); otherwise it must already be registered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from offchain.errors import MarketError
from offchain.node.datasource import DataSource, open_source


class ConfigError(MarketError, ValueError):
    """The config file is missing, not JSON, or has invalid fields (the message names them)."""


class DatasetConfig(BaseModel):
    """One dataset a node holds: a CSV file, or a SQLite file and its ``table``."""

    model_config = ConfigDict(extra="forbid")
    path: Path
    table: str | None = None


class NodeConfig(BaseModel):
    """Validated node configuration. Timeouts are in seconds."""

    model_config = ConfigDict(extra="forbid")
    rpc_url: str
    ws_url: str | None = None  # block subscriptions; default: rpc_url as ws:// (anvil: both)
    market: str
    keys_file: Path
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    public_endpoint: str | None = None
    datasets: dict[str, DatasetConfig] = Field(default_factory=dict)
    register_stake_wei: int | None = Field(default=None, gt=0)
    state_dir: Path = Path("state")
    poll_interval_s: float = Field(default=0.02, gt=0, le=10)
    collect_timeout_s: float = Field(default=10.0, gt=0, le=600)
    round_timeout_s: float = Field(default=10.0, gt=0, le=600)
    straggler_grace_s: float = Field(default=0.25, ge=0, le=60)
    deadline_margin_s: float = Field(default=5.0, ge=0, le=3600)
    submit_backoff_s: float = Field(default=3.0, ge=0, le=600)
    beacon_leader_timeout_s: float = Field(default=2.0, gt=0, le=600)
    # Fault injection for demonstrations and tests. "withhold": the node takes part in beacon
    # rounds but never reveals (its contribution is recovered from shares; it is slashed).
    # "bad_share": it deals one recipient a share that does not match its commitment (detected,
    # provable, and the node is left out of Q).
    beacon_fault: Literal["withhold", "bad_share"] | None = None

    @field_validator("ws_url")
    @classmethod
    def _ws(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("ws://", "wss://")):
            raise ValueError("ws_url must be a ws(s) URL")
        return v

    @field_validator("rpc_url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("rpc_url must be an http(s) URL")
        return v

    def sources(self) -> dict[str, DataSource]:
        """Dataset name -> its data source."""
        return {name: open_source(d.path, d.table) for name, d in self.datasets.items()}


def load_config(path: str | Path) -> NodeConfig:
    """Read and validate a config file; relative paths become relative to its directory."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc}") from exc
    try:
        cfg = NodeConfig.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{p}: {problems}") from exc
    base = p.resolve().parent
    cfg.keys_file = base / cfg.keys_file
    cfg.state_dir = base / cfg.state_dir
    for d in cfg.datasets.values():
        d.path = base / d.path
    return cfg
