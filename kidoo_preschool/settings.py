"""Settings for the kidoo preschool site.

Twelve-factor: everything that differs between a laptop and Render comes from the environment.
With nothing set, the site runs on the embedded default: an SQLite file and media on local disk.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


# Local development is asked for explicitly (DEBUG=1, the README's runserver command): plain HTTP,
# media served from MEDIA_ROOT, Django's debug pages. Anything else gets the production defaults
# (HTTPS redirect, secure cookies, HSTS), so a forgotten variable never weakens a real deployment.
DEBUG = env_bool("DEBUG")
# Render sets RENDER=true in every service; PRODUCTION=1 marks any other production host.
PRODUCTION = env_bool("RENDER") or env_bool("PRODUCTION")
if DEBUG and PRODUCTION:
    raise ImproperlyConfigured(
        "DEBUG is on in production (RENDER or PRODUCTION is set): debug pages would show settings "
        "and tracebacks to anyone. Remove DEBUG from the service's environment."
    )

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'` "
            "and set it in the service's environment."
        )
    # Local use only: the 'django-insecure-' prefix makes `check --deploy` flag it.
    SECRET_KEY = "django-insecure-local-development-key-not-for-production"  # noqa: S105

# Render's `generateValue: true` (render.yaml) is a base64-encoded 256-bit random value: 44
# characters, full strength, but under the 50 that Django's security.W009 asks for. Only that
# length rule is waived, and only for a key of at least 256 bits' worth of base64; an insecure,
# short or repetitive key is still reported by `check --deploy`.
SILENCED_SYSTEM_CHECKS: list[str] = []
if (
    43 <= len(SECRET_KEY) < 50
    and not SECRET_KEY.startswith("django-insecure-")
    and len(set(SECRET_KEY)) >= 20
):
    SILENCED_SYSTEM_CHECKS.append("security.W009")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")
RENDER_EXTERNAL_HOSTNAME = os.environ.get("RENDER_EXTERNAL_HOSTNAME", "").strip()
if RENDER_EXTERNAL_HOSTNAME:
    ALLOWED_HOSTS.append(RENDER_EXTERNAL_HOSTNAME)
if not ALLOWED_HOSTS and not PRODUCTION:
    ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]

CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
if RENDER_EXTERNAL_HOSTNAME:
    CSRF_TRUSTED_ORIGINS.append(f"https://{RENDER_EXTERNAL_HOSTNAME}")

# The public site is a static frontend on another host that calls this API from the browser.
CORS_ALLOWED_ORIGINS = env_list("FRONTEND_ORIGINS")
CORS_URLS_REGEX = r"^/api/.*$"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "api",
    "ops",
]

MIDDLEWARE = [
    # First: answers Render's /healthz probe before Host checks and HTTPS redirects
    # (ops/health/middleware.py).
    "ops.health.middleware.HealthzMiddleware",
    # Next: every /api/ answer is JSON, whichever layer below refuses the request, and chunked
    # request bodies are read (api/middleware.py).
    "api.middleware.ApiJsonMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "kidoo_preschool.urls"
WSGI_APPLICATION = "kidoo_preschool.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def database_from_url(url: str) -> dict[str, object]:
    """The DATABASES entry for ``url``; a one-line ImproperlyConfigured naming DATABASE_URL.

    The message never repeats the URL: it holds the database password.
    """
    expected = "Expected postgres://USER:PASSWORD@HOST:5432/NAME (or sqlite:///PATH)."
    try:
        config = dj_database_url.parse(url, conn_max_age=600, conn_health_checks=True)
    except Exception as error:  # UnknownSchemeError, a bad port, anything the parser refuses
        scheme = url.split("://", 1)[0] if "://" in url else ""
        if isinstance(error, dj_database_url.UnknownSchemeError) and scheme:
            what = f"its scheme {scheme[:20]!r} is not a database this site supports"
        elif scheme:
            what = "it is not a valid URL (a wrong port, or a character in the password to %-encode)"
        else:
            what = "it is not a URL"
        raise ImproperlyConfigured(f"DATABASE_URL is not a usable database URL: {what}. {expected}") from None
    if not config.get("NAME") and "sqlite" not in str(config.get("ENGINE", "")):
        raise ImproperlyConfigured(
            f"DATABASE_URL names no database: add /NAME after the host and port. {expected}"
        )
    return dict(config)


# DATABASE_URL (Render's connectionString) or the embedded SQLite default. Persistent connections
# with health checks: a connection dropped by the server is replaced instead of failing a request.
DATABASES = {
    "default": database_from_url(
        os.environ.get("DATABASE_URL", "").strip() or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "media"))

# Media go to Cloudinary when its credentials are present, else to MEDIA_ROOT. django-cloudinary-
# storage 0.3.0 predates Django 5.1: it must be configured through STORAGES (DEFAULT_FILE_STORAGE is
# ignored silently and files would land on the instance's throwaway disk), and it must come after
# staticfiles in INSTALLED_APPS because its collectstatic override reads the removed
# STATICFILES_STORAGE.
CLOUDINARY_CONFIGURED = bool(
    os.environ.get("CLOUDINARY_URL")
    or (
        os.environ.get("CLOUDINARY_CLOUD_NAME")
        and os.environ.get("CLOUDINARY_API_KEY")
        and os.environ.get("CLOUDINARY_API_SECRET")
    )
)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
if CLOUDINARY_CONFIGURED:
    INSTALLED_APPS.insert(INSTALLED_APPS.index("django.contrib.staticfiles") + 1, "cloudinary_storage")
    STORAGES["default"] = {"BACKEND": "cloudinary_storage.storage.MediaCloudinaryStorage"}
    CLOUDINARY_STORAGE: dict[str, object] = {}
    if os.environ.get("CLOUDINARY_CLOUD_NAME"):
        CLOUDINARY_STORAGE = {
            "CLOUD_NAME": os.environ["CLOUDINARY_CLOUD_NAME"],
            "API_KEY": os.environ["CLOUDINARY_API_KEY"],
            "API_SECRET": os.environ["CLOUDINARY_API_SECRET"],
        }

# HTTPS hardening whenever DEBUG is off. Render terminates TLS at its proxy and forwards the scheme.
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Render's health probe speaks plain HTTP to the instance: a redirect would fail it.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", 60 * 60 * 24 * 365))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)

# Alerts (ops/alerts.py): a failed backup, restore or prune in a cron job or a deploy mails these
# addresses (comma-separated) through the SMTP server below. Django 5.2 wants (name, address) pairs.
ADMINS = [(address, address) for address in env_list("ADMINS")]
SERVER_EMAIL = os.environ.get("SERVER_EMAIL", "root@localhost")
if os.environ.get("EMAIL_HOST"):
    EMAIL_HOST = os.environ["EMAIL_HOST"]
    EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "587"))
    EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
    # An unreachable mail server must not hold a deploy's start command for minutes.
    EMAIL_TIMEOUT = 10

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

# The data-safety toolkit (ops/). Every key is optional; ops/conf.py holds the defaults.
OPS: dict[str, object] = {
    # Which folder of the backup repository this site's backups live in (default: the database's
    # name, which Render may suffix: render.yaml sets it explicitly); set it locally to read
    # production's backups.
    "BACKUP_NAMESPACE": os.environ.get("BACKUP_NAMESPACE") or None,
    # A healthchecks.io / Cronitor ping URL: pinged after each backup, + "/fail" when a backup,
    # restore or prune fails (ops/alerts.py). Unset: no pings.
    "ALERT_URL": os.environ.get("BACKUP_ALERT_URL") or None,
}
