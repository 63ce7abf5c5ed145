"""Wires the services of one Keyturn process together from Settings and a Clock."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from anyio import to_thread

from keyturn.clock import Clock, SystemClock
from keyturn.config import Settings
from keyturn.core.cache import BoundedTtlCache
from keyturn.core.passwords import Argon2Parameters, PasswordHashing
from keyturn.core.sealing import Sealer
from keyturn.core.sessions import UserRecord
from keyturn.mail.sender import Mailer, MailSender
from keyturn.mail.transports import DEVELOPMENT_MAIL_DIR, FileTransport, SmtpTransport, Transport
from keyturn.ratelimit.database import DatabaseRateLimiter
from keyturn.ratelimit.limits import ClientLimits
from keyturn.ratelimit.memory import MemoryRateLimiter
from keyturn.ratelimit.protocol import RateLimiter
from keyturn.ratelimit.redis import RedisRateLimiter
from keyturn.revocation.channel import RevocationChannel
from keyturn.revocation.feed import RevocationFeed
from keyturn.revocation.list import RevocationList
from keyturn.revocation.service import RevocationService
from keyturn.services.access import AccessService
from keyturn.services.accounts import AccountService
from keyturn.services.admin import AdminService
from keyturn.services.audit import AuditTrail
from keyturn.services.browser import BrowserService
from keyturn.services.factors import FactorService
from keyturn.services.federation import FederationService
from keyturn.services.hashing import HashingGate
from keyturn.services.identities import IdentityService
from keyturn.services.issuing import IssuingService
from keyturn.services.keyring import KeyringService
from keyturn.services.login import LoginService, LoginThrottle
from keyturn.services.lost_answers import LostAnswers
from keyturn.services.mfa import MfaService
from keyturn.services.passkey_login import PasskeyLoginService
from keyturn.services.passkeys import PasskeyService, RelyingParty
from keyturn.services.reauthentication import ReauthenticationService
from keyturn.services.recovery import RecoveryService
from keyturn.services.rotation import RotationService
from keyturn.services.sealing import development_key_in_use, load_sealer, seal_stored_secrets
from keyturn.services.sessions import SessionService
from keyturn.services.upkeep import Upkeep
from keyturn.services.verification import EmailLinks
from keyturn.storage.db import Database
from keyturn.storage.migrations import upgrade_database
from keyturn.storage.redis import RedisLink

logger = logging.getLogger("keyturn.sealing")


@dataclass
class Services:
    settings: Settings
    clock: Clock
    database: Database
    keyring: KeyringService
    accounts: AccountService
    access: AccessService
    issuing: IssuingService
    login: LoginService
    rotation: RotationService
    sessions: SessionService
    admin: AdminService
    revocation: RevocationService
    feed: RevocationFeed
    limiter: RateLimiter
    upkeep: Upkeep
    lost_answers: LostAnswers
    browser: BrowserService
    hashing: HashingGate
    password_hashing: PasswordHashing
    sealer: Sealer
    recovery: RecoveryService
    passkeys: PasskeyService
    passkey_login: PasskeyLoginService
    mfa: MfaService
    factors: FactorService
    reauthentication: ReauthenticationService
    federation: FederationService
    identities: IdentityService
    extra_probes: dict[str, Callable[[], None]] = field(default_factory=dict)
    redis: RedisLink | None = None
    mail: Mailer | None = None

    async def start(self) -> None:
        """Apply pending migrations, seal secrets still in plain text, load keys (creating
        the first), catch up with the revocation feed, start upkeep."""
        try:
            await to_thread.run_sync(upgrade_database, self.database)
            await to_thread.run_sync(seal_stored_secrets, self.database, self.sealer)
            await to_thread.run_sync(self.keyring.ensure_signing_key)
            await to_thread.run_sync(self.feed.sync_now)
            await to_thread.run_sync(self.browser.load_key)
            # Answers in flight when an earlier process died may be lost: see lost_answers.
            await to_thread.run_sync(self.lost_answers.record_start, self.database)
            await to_thread.run_sync(self.federation.load_key)
        except BaseException:
            self.database.dispose()  # a start that fails (keys it cannot unseal) leaks nothing
            raise
        development_key = development_key_in_use(self.settings)
        if development_key is not None:
            logger.warning(
                "no KEYTURN_SECRETS_KEY: secrets at rest are sealed with the development key in"
                " %s; the database cannot be read without it",
                development_key,
            )
        self.upkeep.start()

    def readiness_probes(self) -> dict[str, Callable[[], None]]:
        """Blocking checks by dependency name; each raises ServiceUnavailableError."""
        return {"database": self.database.ping, **self.extra_probes}

    async def stop(self) -> None:
        try:
            await self.upkeep.stop()
            await self.federation.close()
        finally:
            self.database.dispose()
            self.password_hashing.close()
            if self.redis is not None:
                self.redis.close()


def password_hashing(settings: Settings) -> PasswordHashing:
    return PasswordHashing(
        Argon2Parameters(
            memory_kib=settings.argon2_memory_kib,
            time_cost=settings.argon2_time_cost,
            parallelism=settings.argon2_parallelism,
        ),
        threads=settings.hashing_threads,
    )


def mail_transport(settings: Settings) -> Transport:
    """SMTP when KEYTURN_SMTP_URL is set; else (development: production refuses to start)
    .eml files under ./.keyturn/mail/."""
    if settings.smtp_url is not None:
        return SmtpTransport(
            settings.smtp_url.get_secret_value(), timeout=settings.smtp_timeout_seconds
        )
    return FileTransport(DEVELOPMENT_MAIL_DIR)


def build_services(
    settings: Settings, *, clock: Clock | None = None, database: Database | None = None
) -> Services:
    clock = clock or SystemClock()
    # Upkeep checkpoints SQLite's log once started; until then (a CLI command) the log is
    # checkpointed when the last connection closes.
    database = database or Database(settings.database_url, checkpoint_in_background=True)
    hashing = password_hashing(settings)
    audit = AuditTrail(clock)
    user_cache: BoundedTtlCache[str, UserRecord] = BoundedTtlCache(
        max_entries=settings.user_cache_size, ttl_seconds=settings.user_cache_seconds
    )
    revocation = RevocationService(
        settings, database, clock, revocations=RevocationList(), user_cache=user_cache
    )
    feed = RevocationFeed(database, clock, revocation=revocation)
    sealer = load_sealer(settings)
    keyring = KeyringService(settings, database, clock, sealer=sealer)
    # Login failures and registrations are counted where every instance sees them: Redis,
    # else the database. Refreshes never cost a database write: Redis, else per process.
    limiter: RateLimiter = DatabaseRateLimiter(database, clock)
    fast_limiter: RateLimiter = MemoryRateLimiter(clock)
    link = RedisLink(settings.redis_url) if settings.redis_url else None
    channel: RevocationChannel | None = None
    extra_probes: dict[str, Callable[[], None]] = {}
    if link is not None:
        limiter = RedisRateLimiter(link, fallback=limiter)
        fast_limiter = RedisRateLimiter(link, fallback=fast_limiter)
        channel = RevocationChannel(link, origin=secrets.token_hex(8))
        revocation.hooks.append(channel.publish)
        extra_probes["redis"] = link.ping
    client_limits = ClientLimits(settings, shared=limiter, fast=fast_limiter)
    mail_sender = MailSender(settings, database, clock, transport=mail_transport(settings))
    mailer = Mailer(settings, clock, sender=mail_sender)
    links = EmailLinks(settings, clock, mailer=mailer, audit=audit)
    access = AccessService(
        settings, database, clock, keyring=keyring, revocation=revocation, user_cache=user_cache
    )
    issuing = IssuingService(
        settings, clock, keyring=keyring, revocation=revocation, audit=audit, user_cache=user_cache
    )
    throttle = LoginThrottle(settings, database, clock, limiter=limiter, audit=audit)
    mfa_sealer = (
        sealer.sealing_with(settings.mfa_encryption_key.get_secret_value())
        if settings.mfa_encryption_key is not None
        else sealer
    )
    mfa = MfaService(
        settings,
        database,
        clock,
        sealer=mfa_sealer,
        throttle=throttle,
        issuing=issuing,
        audit=audit,
        mailer=mailer,
    )
    revocation.key_listeners.append(access.forget_key)
    lost_answers = LostAnswers(settings, clock, audit=audit)
    relying_party = RelyingParty(settings, database, clock)
    return Services(
        settings=settings,
        clock=clock,
        database=database,
        keyring=keyring,
        accounts=AccountService(
            database, hashing, audit, clock, client_limits=client_limits, links=links
        ),
        access=access,
        issuing=issuing,
        login=LoginService(
            database,
            hashing=hashing,
            throttle=throttle,
            audit=audit,
            issuing=issuing,
            require_verified_email=settings.require_verified_email,
            second_step=mfa.require_second_step,
            clock=clock,
        ),
        rotation=RotationService(
            settings,
            clock,
            revocation=revocation,
            audit=audit,
            issuing=issuing,
            client_limits=client_limits,
            lost_answers=lost_answers,
        ),
        sessions=SessionService(
            database,
            clock,
            hashing=hashing,
            revocation=revocation,
            audit=audit,
            access=access,
            throttle=throttle,
        ),
        admin=AdminService(
            database,
            clock,
            revocation=revocation,
            audit=audit,
            hashing=hashing,
            limiter=limiter,
            throttle=throttle,
        ),
        revocation=revocation,
        feed=feed,
        limiter=limiter,
        lost_answers=lost_answers,
        upkeep=Upkeep(
            settings,
            database,
            clock,
            revocation=revocation,
            feed=feed,
            keyring=keyring,
            channel=channel,
            mail=mail_sender,
        ),
        hashing=HashingGate(threads=hashing.threads, max_waiting=settings.hashing_queue_max),
        password_hashing=hashing,
        browser=BrowserService(settings, database, clock, sealer=sealer),
        sealer=sealer,
        recovery=RecoveryService(
            settings,
            database,
            clock,
            links=links,
            hashing=hashing,
            limiter=limiter,
            throttle=throttle,
            revocation=revocation,
            audit=audit,
        ),
        passkeys=PasskeyService(
            database, clock, relying_party=relying_party, audit=audit, revocation=revocation
        ),
        passkey_login=PasskeyLoginService(
            settings,
            database,
            clock,
            relying_party=relying_party,
            limiter=limiter,
            audit=audit,
            issuing=issuing,
            mfa=mfa,
        ),
        mfa=mfa,
        factors=FactorService(
            database, clock, sealer=mfa_sealer, revocation=revocation, audit=audit
        ),
        reauthentication=ReauthenticationService(
            settings,
            database,
            clock,
            hashing=hashing,
            throttle=throttle,
            access=access,
            issuing=issuing,
            mfa=mfa,
            revocation=revocation,
            audit=audit,
        ),
        federation=FederationService(
            settings,
            database,
            clock,
            sealer=sealer,
            limiter=limiter,
            audit=audit,
            issuing=issuing,
            mfa=mfa,
        ),
        identities=IdentityService(database, clock, audit=audit),
        extra_probes=extra_probes,
        redis=link,
        mail=mailer,
    )
