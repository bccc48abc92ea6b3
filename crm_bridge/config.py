"""The configuration, validated once at the edge: TOML file + environment + optional secrets file.

Precedence (highest first): environment variables (``CRM_BRIDGE_`` prefix, ``__`` between
levels, e.g. ``CRM_BRIDGE_CONNECTORS__SALESFORCE__CLIENT_SECRET``), the secrets file (same
``KEY=value`` lines as the environment), then the TOML file.

Why the rules below:

* **Secrets never live in the TOML.**  TOML files get committed and pasted into tickets.  A secret
  field (any ``SecretStr`` in a connector's settings or in a section's model, such as an SLA
  webhook ``url``, or a connector key that looks like one) written there in plain text is refused
  with the env var to use instead.  The same ``SecretStr`` fields feed the log-masking list, so
  declaring a field secret is all a section needs to do.
* **Every problem at once.**  An admin fixing a config one error per run loses an afternoon;
  :func:`load_config` gathers all problems into one :class:`~crm_bridge.errors.ConfigError`,
  each with the TOML key, the env var that was tried and the fix.
* **Connector settings are validated by the connector's own model**, looked up through the
  registry, so a third-party connector gets the same error quality for free.

Below this module nothing reads the environment: callers get frozen, typed objects.
"""

from __future__ import annotations

import re
import tomllib
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from sqlalchemy.engine import make_url

from crm_bridge.connector import Connector, ConnectorSettings
from crm_bridge.errors import ConfigError, ConfigProblem, ConnectorLoadError
from crm_bridge.ops.settings import AlertSettings
from crm_bridge.reasons.taxonomy import ReasonsSettings
from crm_bridge.registry import load_connector
from crm_bridge.sla.policy import SlaSettings
from crm_bridge.sync.mapping import PairSettings

__all__ = [
    "ENV_PREFIX",
    "ConnectorConfig",
    "CrmBridgeSettings",
    "DaemonSettings",
    "LoadedConfig",
    "LoggingSettings",
    "PairSettings",
    "StoreSettings",
    "SyncSettings",
    "config_from_tables",
    "env_var_for",
    "load_config",
]

ENV_PREFIX = "CRM_BRIDGE_"
DEFAULT_STORE_URL = "sqlite:///crm-bridge-state/state.sqlite3"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_SECRET_LOOKING = re.compile(r"(secret|password|passwd|token|api_key|apikey|private_key)$", re.I)


def env_var_for(*path: str | int) -> str:
    """The environment variable that sets the TOML key at ``path``."""
    return ENV_PREFIX + "__".join(str(p).upper() for p in path)


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StoreSettings(_Section):
    """Where crm-bridge keeps links, cursors, dead letters, runs and the audit log."""

    url: str = Field(
        DEFAULT_STORE_URL,
        description="SQLAlchemy URL: sqlite:///path (default) or postgresql+psycopg://...",
    )

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        try:
            url = make_url(value)
        except Exception:
            raise ValueError(f"not a database URL: {value!r}") from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError("only sqlite:// and postgresql+psycopg:// URLs are supported")
        return value


class LoggingSettings(_Section):
    """How log lines look; secrets are masked before formatting in every format."""

    format: Literal["kv", "json"] = Field("kv", description="key=value lines or JSON lines")
    level: Literal["debug", "info", "warning", "error"] = "info"


class DaemonSettings(_Section):
    """The scheduled loop around ``crm-bridge sync``."""

    interval_seconds: float = Field(60.0, ge=1.0, description="Seconds between cycle starts.")
    push: bool = Field(
        False,
        description="Listen to the connectors' push channels (HubSpot webhooks journal, "
        "Salesforce Change Data Capture) and sync hinted records at once.",
    )
    safety_poll_seconds: float = Field(
        600.0,
        ge=1.0,
        description="With push, seconds between full polls of a pair whose sides all have a "
        "channel (the poll is still the truth: deletes, and anything a channel dropped).",
    )
    push_debounce_seconds: float = Field(
        1.0, ge=0.0, description="With push, quiet seconds that end a burst of hints."
    )
    push_max_delay_seconds: float = Field(
        5.0, ge=0.0, description="With push, the longest a hint waits for its burst to end."
    )


class SyncSettings(_Section):
    """How ``crm-bridge sync`` judges a run that dead-lettered part of what it handled.

    Why a threshold: a run whose writes mostly failed (owners that match nobody, a required
    field nobody maps) still ends ``ok`` in the runs table, because every rejected record is kept
    as a dead letter; without it a first sync that dead-lettered 3,278 of 4,500 records exited 0.
    Over the threshold, ``sync`` names the codes and their fixes and exits 5 (the code of
    ``RecordRejectedError``: see ``crm-bridge dlq list --summary``).
    """

    max_dead_letter_ratio: float = Field(
        0.10,
        ge=0,
        le=1,
        description="Share of a run's handled records that may dead-letter before sync exits 5.",
    )
    dead_letter_floor: int = Field(
        10,
        ge=0,
        description="Runs with at most this many dead letters never trip the ratio (one bad "
        "record in a quiet cycle is a dead letter to look at, not a failed run).",
    )


class CrmBridgeSettings(BaseSettings):
    """The whole configuration, before connector-specific validation."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    store: StoreSettings = StoreSettings()
    logging: LoggingSettings = LoggingSettings()
    daemon: DaemonSettings = DaemonSettings()
    sync: SyncSettings = SyncSettings()
    connectors: dict[str, dict[str, Any]] = Field(default_factory=dict)
    pairs: dict[str, PairSettings] = Field(default_factory=dict)
    reasons: ReasonsSettings | None = None
    sla: SlaSettings | None = None
    alerts: AlertSettings | None = None  # [alerts]: crm_bridge/ops/settings.py
    funnel: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="[funnel.PAIR] overrides of the pair's preset funnel stages (funnel/settings).",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Constructed directly, the model reads the environment only; use :func:`load_config`."""
        return (init_settings, env_settings)


@dataclass(frozen=True)
class ConnectorConfig:
    """One configured connector: its name, type, class and validated settings."""

    name: str
    type_name: str
    cls: type[Connector[Any]]
    settings: ConnectorSettings

    def create(self) -> Connector[Any]:
        """Instantiate the connector."""
        return self.cls(self.settings, name=self.name)


@dataclass(frozen=True)
class LoadedConfig:
    """The validated configuration the rest of crm-bridge receives."""

    settings: CrmBridgeSettings
    connectors: Mapping[str, ConnectorConfig]
    source: Path | None

    def secret_values(self) -> list[str]:
        """Every secret's plain value, so logging can mask it even if one leaks into a string.

        Found by walking the validated models for ``SecretStr`` (connector settings and every
        section, e.g. SLA webhook URLs), so a new secret field is masked without a list to update.
        """
        found: list[str] = []
        for conn in self.connectors.values():
            found.extend(_secrets_in(conn.settings))
        found.extend(_secrets_in(self.settings))
        store_password = make_url(self.settings.store.url).password
        if store_password:
            found.append(str(store_password))
        return list(dict.fromkeys(s for s in found if s))


def _secrets_in(value: Any) -> Iterator[str]:
    """Plain values of every ``SecretStr`` in ``value``, through models, mappings and lists."""
    if isinstance(value, SecretStr):
        yield value.get_secret_value()
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secrets_in(getattr(value, name))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _secrets_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _secrets_in(item)


def config_from_tables(
    tables: Mapping[str, Mapping[str, Any]], sections: Mapping[str, Any]
) -> LoadedConfig:
    """A validated configuration built in memory, for sandboxes, tests and benches.

    ``tables`` are connector tables (``type`` plus settings, secrets included: they never pass
    through a TOML file here); ``sections`` are the rest (store, pairs, ...).
    """
    connectors = {}
    for name, table in tables.items():
        cls = load_connector(str(table["type"]))
        values = {k: v for k, v in table.items() if k != "type"}
        connectors[name] = ConnectorConfig(
            name=name,
            type_name=str(table["type"]),
            cls=cls,
            settings=cls.Settings.model_validate(values),
        )
    settings = CrmBridgeSettings.model_validate(
        {**sections, "connectors": {n: {"type": t["type"]} for n, t in tables.items()}}
    )
    return LoadedConfig(settings=settings, connectors=connectors, source=None)


def load_config(
    path: Path | None,
    *,
    secrets_file: Path | None = None,
    builtin_only: bool = False,
) -> LoadedConfig:
    """Read, merge and validate the configuration; raise one ConfigError listing every problem."""
    problems: list[ConfigProblem] = []
    raw = _read_toml(path) if path is not None else {}
    problems.extend(_plaintext_secret_problems(raw, builtin_only=builtin_only))
    problems.extend(_store_password_problem(raw))

    merged = _merge_sources(raw, secrets_file)
    settings: CrmBridgeSettings | None = None
    try:
        settings = CrmBridgeSettings.model_validate(merged)
    except ValidationError as exc:
        problems.extend(_problems_from(exc, prefix=(), model=CrmBridgeSettings))

    connectors: dict[str, ConnectorConfig] = {}
    raw_connectors = merged.get("connectors")
    if isinstance(raw_connectors, Mapping):
        for name, entry in raw_connectors.items():
            if not isinstance(entry, Mapping):
                continue
            found, connector_problems = _validate_connector(name, entry, builtin_only=builtin_only)
            problems.extend(connector_problems)
            if found is not None:
                connectors[name] = found

    if settings is not None:
        problems.extend(_pair_problems(settings, raw_connectors))
        problems.extend(_funnel_problems(settings))
        names = set(raw_connectors) if isinstance(raw_connectors, Mapping) else set()
        problems.extend(_sla_problems(settings, names))
        problems.extend(_reasons_problems(settings, names))
    if problems or settings is None:
        raise ConfigError(_dedupe(problems))
    # The raw connector tables may hold secrets in plain text; once each connector's own model
    # has them as SecretStr, keep only the types so no repr of the settings can show a secret.
    settings = settings.model_copy(
        update={"connectors": {n: {"type": c.type_name} for n, c in connectors.items()}}
    )
    return LoadedConfig(settings=settings, connectors=connectors, source=path)


def _reserved_pair_problem(pair_name: str) -> ConfigProblem | None:
    """Refuse a pair name that the store already uses for another engine's cursors.

    Why: the reason capture keeps its cursors under the pair ``reasons`` and the SLA engine under
    ``sla:<connector>``, in the same ``pair`` column the sync's run history, links and dead
    letters are keyed by (and migration 0006 tells sync cursors apart by these names).  A pair of
    that name would share or clobber those rows, so it is refused up front; ``:`` is reserved
    for internal names as a whole, so a future engine's prefix cannot collide either.
    """
    # Imported here: config stays importable without the store and the engines behind them.
    from crm_bridge.reasons.repository import CURSOR_PAIR as REASONS_CURSOR_PAIR
    from crm_bridge.sla.engine import CURSOR_PAIR_PREFIX as SLA_CURSOR_PAIR_PREFIX

    separator = SLA_CURSOR_PAIR_PREFIX[-1]  # the ":" of "sla:"
    if pair_name == REASONS_CURSOR_PAIR:
        why = f"{pair_name!r} is reserved: the reason capture stores its cursors under that name"
    elif separator in pair_name:
        why = (
            f"pair names must not contain {separator!r}: it is reserved for internal cursor names "
            f"such as the SLA engine's {SLA_CURSOR_PAIR_PREFIX}<connector>"
        )
    else:
        return None
    return ConfigProblem(
        f"pairs.{pair_name}",
        why,
        fix=f"rename the pair: [pairs.NEW_NAME] instead of [pairs.{pair_name}] "
        "(its sync state then starts afresh under the new name)",
    )


def _unknown_connector(key: str, name: str, names: set[str]) -> ConfigProblem:
    """``key`` names a connector that has no ``[connectors.NAME]`` table."""
    path = key.split(".")
    return ConfigProblem(
        key,
        f"names connector {name!r}, which is not configured",
        env_var_for(*path),
        f"use one of: {', '.join(sorted(names)) or 'none configured'}, "
        f"or add a [connectors.{name}] table",
    )


def _sla_problems(settings: CrmBridgeSettings, names: set[str]) -> list[ConfigProblem]:
    """The ``[sla]`` section's references to connectors and to the sync pair's links.

    Why here and not in :class:`~crm_bridge.sla.policy.SlaSettings`: the SLA model checks its own
    names (teams, reps, calendars, webhooks), but connectors and pairs are other sections.  A
    connector that does not exist made ``sla run`` die with a raw ``KeyError``; a ``link_object``
    no pair defines (``"lead"`` for the preset's ``leads``) opened no clock and said nothing,
    because no link was ever found under that name.
    """
    sla = settings.sla
    if sla is None:
        return []
    problems: list[ConfigProblem] = []
    if sla.crm.connector not in names:
        problems.append(_unknown_connector("sla.crm.connector", sla.crm.connector, names))
    marketing = sla.marketing
    if marketing is None:
        return problems
    if marketing.connector not in names:
        problems.append(_unknown_connector("sla.marketing.connector", marketing.connector, names))
    pair = settings.pairs.get(marketing.link_pair)
    if pair is None:
        problems.append(
            ConfigProblem(
                "sla.marketing.link_pair",
                f"names pair {marketing.link_pair!r}, which is not configured: no link pairs a "
                "lead with its marketing record, so no clock would open",
                env_var_for("sla", "marketing", "link_pair"),
                f"use one of: {', '.join(sorted(settings.pairs)) or 'no pairs configured'}",
            )
        )
        return problems
    where = f"pair {marketing.link_pair!r}"
    if marketing.link_object not in pair.objects:
        problems.append(
            ConfigProblem(
                "sla.marketing.link_object",
                f"{where} defines no object {marketing.link_object!r} (its objects: "
                f"{', '.join(sorted(pair.objects)) or 'none'}), so no lead would ever be found "
                "linked and every lead would count as not an MQL",
                env_var_for("sla", "marketing", "link_object"),
                "use the pair's object that syncs leads with marketing people "
                + _people_object_hint(pair),
            )
        )
    else:
        objmap = pair.objects[marketing.link_object]
        if objmap.map_object != marketing.object:
            problems.append(
                ConfigProblem(
                    "sla.marketing.object",
                    f"is {marketing.object!r}, but {where}'s object {marketing.link_object!r} "
                    f"links {objmap.map_object!r} records",
                    env_var_for("sla", "marketing", "object"),
                    f'set object = "{objmap.map_object}" or pick the link_object that links '
                    f"{marketing.object!r}",
                )
            )
    for key, connector, side in (
        ("sla.crm.connector", sla.crm.connector, pair.crm),
        ("sla.marketing.connector", marketing.connector, pair.map),
    ):
        if connector in names and connector != side:
            problems.append(
                ConfigProblem(
                    key,
                    f"is {connector!r}, but the link pair {marketing.link_pair!r} syncs "
                    f"{side!r} on that side, so its links hold no record of {connector!r}",
                    env_var_for(*key.split(".")),
                    f'set {key.rsplit(".", 1)[-1]} = "{side}" or link_pair to a pair of '
                    f"{connector!r}",
                )
            )
    return problems


def _people_object_hint(pair: PairSettings) -> str:
    people = [n for n, o in pair.objects.items() if o.identity is not None and o.fields]
    crm_people = [n for n in people if pair.objects[n].crm_object in ("Lead", "Person")]
    found = crm_people or people
    return f'(e.g. link_object = "{found[0]}")' if found else ""


def _reasons_problems(settings: CrmBridgeSettings, names: set[str]) -> list[ConfigProblem]:
    """``[reasons]`` must name configured connectors (``crm`` and ``marketing``)."""
    reasons = settings.reasons
    if reasons is None:
        return []
    return [
        _unknown_connector(f"reasons.{key}", name, names)
        for key, name in (("crm", reasons.crm), ("marketing", reasons.marketing))
        if name not in names
    ]


def _funnel_problems(settings: CrmBridgeSettings) -> list[ConfigProblem]:
    """Each ``[funnel.PAIR]`` must name a pair and validate on top of that pair's preset."""
    from crm_bridge.funnel.settings import FunnelSettings, funnel_settings

    problems: list[ConfigProblem] = []
    for name, table in settings.funnel.items():
        pair = settings.pairs.get(name)
        if pair is None:
            problems.append(
                ConfigProblem(
                    f"funnel.{name}",
                    f"names pair {name!r}, which is not configured",
                    fix=f"use one of: {', '.join(sorted(settings.pairs)) or 'no pairs configured'}",
                )
            )
            continue
        try:
            funnel_settings(pair.preset, table)
        except ValidationError as exc:
            problems.extend(_problems_from(exc, prefix=("funnel", name), model=FunnelSettings))
    return problems


def _pair_problems(settings: CrmBridgeSettings, raw_connectors: Any) -> list[ConfigProblem]:
    """Pairs must name configured connectors, one on each side, and no reserved name."""
    problems = []
    names = set(raw_connectors) if isinstance(raw_connectors, Mapping) else set()
    for pair_name, pair in settings.pairs.items():
        reserved = _reserved_pair_problem(pair_name)
        if reserved is not None:
            problems.append(reserved)
        for side in ("crm", "map"):
            target = getattr(pair, side)
            if target not in names:
                problems.append(
                    ConfigProblem(
                        f"pairs.{pair_name}.{side}",
                        f"names connector {target!r}, which is not configured",
                        env_var_for("pairs", pair_name, side),
                        f"use one of: {', '.join(sorted(names)) or 'none configured'}",
                    )
                )
        if pair.crm == pair.map:
            problems.append(
                ConfigProblem(f"pairs.{pair_name}", "crm and map name the same connector")
            )
        if not pair.objects:
            problems.append(
                ConfigProblem(
                    f"pairs.{pair_name}.objects",
                    "no objects to sync",
                    fix='add [pairs.NAME.objects.OBJ] tables or preset = "hubspot_salesforce"',
                )
            )
    return problems


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(
            [ConfigProblem(str(path), "file not found", "CRM_BRIDGE_CONFIG", "pass --config PATH")]
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            [ConfigProblem(str(path), f"not valid TOML: {exc}", fix="fix the syntax")]
        ) from None


def _merge_sources(raw: Mapping[str, Any], secrets_file: Path | None) -> dict[str, Any]:
    """TOML, then the secrets file, then the environment, deep-merged (later wins)."""
    layers: list[Mapping[str, Any]] = [raw]
    if secrets_file is not None:
        if not secrets_file.is_file():
            raise ConfigError(
                [
                    ConfigProblem(
                        str(secrets_file),
                        "secrets file not found",
                        "CRM_BRIDGE_SECRETS_FILE",
                        "pass --secrets-file PATH to an existing KEY=value file",
                    )
                ]
            )
        layers.append(DotEnvSettingsSource(CrmBridgeSettings, env_file=secrets_file)())
    layers.append(EnvSettingsSource(CrmBridgeSettings, case_sensitive=False)())
    merged: dict[str, Any] = {}
    for layer in layers:
        _deep_merge(merged, layer)
    return merged


def _deep_merge(into: dict[str, Any], update: Mapping[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        elif isinstance(value, Mapping):
            into[key] = {}
            _deep_merge(into[key], value)
        else:
            into[key] = value


def _validate_connector(
    name: str, entry: Mapping[str, Any], *, builtin_only: bool
) -> tuple[ConnectorConfig | None, list[ConfigProblem]]:
    key = f"connectors.{name}"
    problems: list[ConfigProblem] = []
    if not _NAME.match(name):
        problems.append(
            ConfigProblem(key, "connector names must be lower_snake_case", fix="rename the table")
        )
    type_name = entry.get("type")
    if not isinstance(type_name, str):
        problems.append(
            ConfigProblem(
                f"{key}.type",
                "missing",
                env_var_for("connectors", name, "type"),
                'add type = "<connector>" (see `crm-bridge connectors list`)',
            )
        )
        return None, problems
    try:
        cls = load_connector(type_name, builtin_only=builtin_only)
    except ConnectorLoadError as exc:
        problems.append(
            ConfigProblem(f"{key}.type", exc.problems[0].problem, fix=exc.problems[0].fix)
        )
        return None, problems
    values = {k: v for k, v in entry.items() if k != "type"}
    try:
        settings = cls.Settings.model_validate(values)
    except ValidationError as exc:
        problems.extend(_problems_from(exc, prefix=("connectors", name), model=cls.Settings))
        return None, problems
    if problems:
        return None, problems
    return ConnectorConfig(name=name, type_name=type_name, cls=cls, settings=settings), problems


def _secret_fields(model: type[BaseModel]) -> set[str]:
    return {name for name, info in model.model_fields.items() if _is_secret(info.annotation)}


def _members(annotation: Any) -> tuple[Any, ...]:
    """The alternatives of a union (``X | None`` -> ``(X, NoneType)``), else the type itself."""
    if get_origin(annotation) in (Union, types.UnionType):
        return get_args(annotation)
    return (annotation,)


def _is_secret(annotation: Any) -> bool:
    return any(member is SecretStr for member in _members(annotation))


def _annotation_at(model: type[BaseModel], loc: Sequence[Any]) -> Any:
    """The annotation of the key at ``loc`` below ``model`` (through unions and dicts), or None."""
    current: Any = model
    for part in loc:
        found: Any = None
        for member in _members(current):
            if isinstance(member, type) and issubclass(member, BaseModel):
                info = member.model_fields.get(str(part))
                found = info.annotation if info is not None else None
            elif get_origin(member) is dict:
                found = get_args(member)[1]
            if found is not None:
                break
        if found is None:
            return None
        current = found
    return current


def _plaintext_in_sections(
    raw: Any, annotation: Any, path: tuple[str, ...]
) -> Iterator[tuple[str, ...]]:
    """Paths where ``annotation`` expects a ``SecretStr`` and the TOML holds a string.

    Walks the raw TOML along the settings model rather than a list of known secret keys, so a
    ``SecretStr`` added to any section (SLA webhook URLs today) is refused here automatically.
    """
    for member in _members(annotation):
        if member is SecretStr:
            if isinstance(raw, str):
                yield path
        elif isinstance(member, type) and issubclass(member, BaseModel):
            if isinstance(raw, Mapping):
                for key, value in raw.items():
                    info = member.model_fields.get(str(key))
                    if info is not None:
                        yield from _plaintext_in_sections(value, info.annotation, (*path, key))
        elif get_origin(member) is dict and isinstance(raw, Mapping):
            value_type = get_args(member)[1]
            for key, value in raw.items():
                yield from _plaintext_in_sections(value, value_type, (*path, str(key)))


def _plaintext_problem(*path: str) -> ConfigProblem:
    env = env_var_for(*path)
    return ConfigProblem(
        ".".join(path),
        "a secret is written in plain text in the TOML file; refused",
        env,
        f"delete it from the TOML and set {env} (environment or secrets file)",
    )


def _plaintext_secret_problems(
    raw: Mapping[str, Any], *, builtin_only: bool
) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    connectors = raw.get("connectors")
    if isinstance(connectors, Mapping):
        for name, entry in connectors.items():
            if isinstance(entry, Mapping):
                problems.extend(_connector_plaintext(name, entry, builtin_only=builtin_only))
    problems.extend(
        _plaintext_problem(*path) for path in _plaintext_in_sections(raw, CrmBridgeSettings, ())
    )
    return problems


def _connector_plaintext(
    name: str, entry: Mapping[str, Any], *, builtin_only: bool
) -> Iterator[ConfigProblem]:
    """Connector tables are untyped here, so their secrets come from the connector's model."""
    declared: set[str] = set()
    type_name = entry.get("type")
    if isinstance(type_name, str):
        try:
            declared = _secret_fields(load_connector(type_name, builtin_only=builtin_only).Settings)
        except ConnectorLoadError:
            declared = set()
    for field_name, value in entry.items():
        if not isinstance(value, str):
            continue
        if field_name in declared or _SECRET_LOOKING.search(field_name):
            yield _plaintext_problem("connectors", name, field_name)


def _store_password_problem(raw: Mapping[str, Any]) -> list[ConfigProblem]:
    store = raw.get("store")
    if not isinstance(store, Mapping) or not isinstance(store.get("url"), str):
        return []
    try:
        password = make_url(store["url"]).password
    except Exception:
        return []
    if not password:
        return []
    env = env_var_for("store", "url")
    return [
        ConfigProblem(
            "store.url",
            "the database URL in the TOML contains a password; refused",
            env,
            f"remove the password from the TOML and set the full URL in {env}",
        )
    ]


def _problems_from(
    exc: ValidationError, *, prefix: Sequence[str], model: type[BaseModel] | None = None
) -> list[ConfigProblem]:
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = [*prefix, *(str(p) for p in err["loc"])]
        key = ".".join(loc)
        env = env_var_for(*loc)
        kind = err["type"]
        if kind == "missing":
            # A missing secret must not be pointed at the TOML, which would refuse it.
            secret = model is not None and _is_secret(_annotation_at(model, err["loc"]))
            where = f"set {env}" if secret else f"set `{key}` in the TOML or {env}"
            problems.append(ConfigProblem(key, "required but not set", env, where))
        elif kind == "extra_forbidden":
            known = _known_keys(model, err["loc"][:-1]) if model is not None else None
            fix = f"remove it (known keys here: {', '.join(known)})" if known else "remove it"
            problems.append(ConfigProblem(key, "unknown key", env, fix))
        else:
            problems.append(ConfigProblem(key, err["msg"], env, "correct the value"))
    return problems


def _known_keys(model: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    current: Any = model
    for part in loc:
        info = getattr(current, "model_fields", {}).get(part)
        if info is None:
            return []
        current = info.annotation
    fields = getattr(current, "model_fields", None)
    return sorted(fields) if fields else []


def _dedupe(problems: Iterable[ConfigProblem]) -> list[ConfigProblem]:
    seen: dict[tuple[str, str], ConfigProblem] = {}
    for p in problems:
        seen.setdefault((p.key, p.problem), p)
    return list(seen.values())
