"""The stages of an exchange, in order: the one list, built from the config.

Start-up and every reload call `build`; an exchange keeps the list it started with to
its end. The core (`aiogw.proxy`) does what every exchange needs — route,
authenticate, read the body within its limits, forward, relay — and calls the stages'
hooks in this list's order (`aiogw.stage` says what a hook is):

    KeylessRecords    end     a keyless exchange past its record budget: counted only
    GuardCheck        check   the request's texts scanned: block, redact or log
    AnswerStage       check   the answer's guard, as a tap on the exchange
    LimitAdmission    check   rate, concurrency, budget: admit or refuse
     or SharedAdmission check allowed routes and models;
                      reserve rate, concurrency, budget in Redis ([limits] store)
    UsageRequest      check   OpenAI chat streams asked for their usage
    ChargeNow         end     a user with limits charged on the loop
    Finisher          admit   back-pressure: a 503 while finished exchanges pile up
                      end     read, scan, charge, report, record (off the request path)

A stage with nothing to do under the config is left out of the list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiogw.config import Config, ConfigError
from aiogw.finish import Finisher
from aiogw.guards.answer_stage import AnswerStage
from aiogw.guards.check import GuardCheck
from aiogw.guards.policy import Policy
from aiogw.guards.response import AnswerGuard
from aiogw.limits.accounting import Accountant, ChargeNow
from aiogw.limits.admission import LimitAdmission, SharedAdmission
from aiogw.limits.usage_request import UsageRequest
from aiogw.stage import Stages
from aiogw.unauthenticated import KeylessRecords

if TYPE_CHECKING:  # the engine needs Hyperscan: imported only with guards on
    from aiogw.guards.engine import Engine


@dataclass(frozen=True)
class Guards:
    """The compiled guards: a reload keeps them unless [guards] changed."""

    request: GuardCheck
    answer: AnswerGuard


@dataclass(frozen=True)
class Parts:
    """The stages' state, made once at start (one owner each); a reload keeps it."""

    finisher: Finisher
    accountant: Accountant
    charge_now: ChargeNow
    keyless: KeylessRecords | None


def build(config: Config, parts: Parts, guards: Guards | None) -> Stages:
    """The stages for this config, in order. `parts.finisher` is configured already."""
    finisher = parts.finisher
    limited = limits_any(config)
    # The finisher settles usage when something reads it (the audit, the metrics, the
    # log line) or some user is limited by it (app._apply decides).
    accounting = finisher.settle is not None
    stages: list[object] = []
    if parts.keyless is not None:
        stages.append(parts.keyless)
    if guards is not None:
        stages += [guards.request, AnswerStage(guards.answer, deferrable=finisher.needed)]
    if limited:
        shared = parts.accountant.shared
        stages.append(LimitAdmission(parts.accountant) if shared is None else SharedAdmission(parts.accountant, shared))
    if accounting:
        stages.append(UsageRequest())
    if limited:
        stages.append(parts.charge_now)
    if finisher.needed:
        stages.append(finisher)
    # The chunks of a stream are kept for whatever reads its answer at the end.
    return Stages(stages, keeps_answer=finisher.needed or limited)


def limits_any(config: Config) -> bool:
    return config.limits.any or any(u.limits.any for u in config.users)


def compile_guards(config: Config) -> Guards | None:
    """The request guard and the answer guard, on one engine; None with guards off.

    Everything is compiled here, before the server listens (or, on a reload, before
    the switch): a bad pattern or a missing Hyperscan stops it with a message, never a
    request.
    """
    if not config.guards.enabled:
        return None
    from aiogw.guards import catalog
    from aiogw.guards.engine import Engine

    try:
        patterns = catalog.load(config.guards.patterns, config.guards.disabled)
    except catalog.CatalogError as exc:
        raise ConfigError(f"{config.source}: [guards]: {exc}") from None
    return guards_on(Engine(patterns), config)


def guards_on(engine: Engine, config: Config) -> Guards:
    """Guards on a compiled engine, with the config's policies (a reload that changed
    only the users' actions keeps the engine)."""
    policy = Policy(config.guards.actions, config.users)
    return Guards(GuardCheck(engine, policy), AnswerGuard(engine, policy))
