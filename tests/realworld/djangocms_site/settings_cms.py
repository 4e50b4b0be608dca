"""django CMS, added to a ``django-admin startproject`` project as django CMS's installation guide says.

(``djangocms``'s own project command fetches its template from the network, which CI has not.)
"""

INSTALLED_APPS = [
    *INSTALLED_APPS,  # noqa: F821
    "django.contrib.sites",
    "cms",
    "menus",
    "treebeard",
    "sekizai",
    "djangocms_text",
    "djangocms_versioning",
    "djangocms_alias",
]
SITE_ID = 1
MIDDLEWARE = [
    "django.middleware.locale.LocaleMiddleware",
    *MIDDLEWARE,  # noqa: F821
    "cms.middleware.user.CurrentUserMiddleware",
    "cms.middleware.page.CurrentPageMiddleware",
    "cms.middleware.toolbar.ToolbarMiddleware",
    "cms.middleware.language.LanguageCookieMiddleware",
]
TEMPLATES[0]["DIRS"] = [BASE_DIR / "templates"]  # noqa: F821
TEMPLATES[0]["OPTIONS"]["context_processors"] += [  # noqa: F821
    "django.template.context_processors.i18n",
    "sekizai.context_processors.sekizai",
    "cms.context_processors.cms_settings",
]
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("de", "Deutsch")]
CMS_TEMPLATES = [("page.html", "Page")]
CMS_CONFIRM_VERSION4 = True
X_FRAME_OPTIONS = "SAMEORIGIN"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
