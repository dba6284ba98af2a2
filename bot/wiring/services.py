"""`Services`: every use-case service, built once and shared by adapters, CLI and scheduler."""

from __future__ import annotations

from dataclasses import dataclass

from bot.clock import Clock, SystemClock
from bot.metrics import Metrics
from bot.services.alerting import Alerting
from bot.services.alerts import AlertService
from bot.services.answers import AnswerService
from bot.services.autoclose import AutoCloseService
from bot.services.billing import BillingService
from bot.services.contacts import ContactService
from bot.services.identity import IdentityService
from bot.services.notify import Notifier
from bot.services.onboarding import OnboardingService
from bot.services.outbox_admin import EventLog, OutboxAdmin
from bot.services.reminders import ReminderService
from bot.services.sla import SlaService
from bot.services.sla_report import SlaReportService
from bot.services.threads import ThreadService
from bot.services.tickets import TicketService
from bot.services.triage import TriageService
from bot.wiring.config import Settings
from storage.db import Database


@dataclass
class Services:
    """Every use-case service, built once and shared by adapters, CLI and scheduler."""

    db: Database
    settings: Settings
    clock: Clock
    notifier: Notifier
    identity: IdentityService
    contacts: ContactService
    onboarding: OnboardingService
    billing: BillingService
    reminders: ReminderService
    tickets: TicketService
    triage: TriageService
    sla: SlaService
    autoclose: AutoCloseService
    sla_report: SlaReportService
    threads: ThreadService
    outbox: OutboxAdmin
    events: EventLog
    alerts: AlertService
    answers: AnswerService
    metrics: Metrics

    @classmethod
    def build(cls, db: Database, settings: Settings, clock: Clock | None = None) -> Services:
        clock = clock or SystemClock()
        notifier = Notifier()
        metrics = Metrics()
        alerting = Alerting(notifier, settings)
        args = (db, settings, clock, notifier, alerting)
        return cls(
            db=db,
            settings=settings,
            clock=clock,
            notifier=notifier,
            identity=IdentityService(*args),
            contacts=ContactService(*args),
            tickets=TicketService(*args),
            triage=TriageService(*args),
            sla=SlaService(*args),
            autoclose=AutoCloseService(*args),
            sla_report=SlaReportService(*args),
            threads=ThreadService(*args),
            outbox=OutboxAdmin(*args),
            events=EventLog(*args),
            onboarding=OnboardingService(*args),
            billing=BillingService(*args),
            reminders=ReminderService(*args),
            alerts=AlertService(*args, metrics=metrics),
            answers=AnswerService(*args),
            metrics=metrics,
        )
