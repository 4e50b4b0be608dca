"""Fill a django CMS site through django CMS's own API; prints the URLs of its pages as JSON.

A page tree in two languages, text plugins (nested ones too), drafts and published versions
(djangocms-versioning), a static alias, users; pages published and unpublished.
"""

import json

import _setup  # noqa: F401
from cms.api import add_plugin, create_page, create_page_content
from cms.models import PageContent
from django.contrib.auth.models import User
from django.db import transaction
from djangocms_versioning.models import Version


def publish(content, user):
    Version.objects.get_for_content(content).publish(user)


def text(content, body):
    placeholder = content.rescan_placeholders()["content"]
    add_plugin(placeholder, "TextPlugin", content.language, body=body)


def main():
    user = User.objects.create_superuser("admin", "admin@example.com", "not-a-real-password")
    home = create_page("Home", "page.html", "en", created_by=user, in_navigation=True)
    with transaction.atomic():
        home.set_as_homepage(user)
    content = PageContent.admin_manager.get(page=home, language="en")
    text(content, "<p>Welcome <b>home</b> «ünïcode»</p>")
    publish(content, user)
    urls = ["/en/"]
    parent = home
    for n in range(10):
        page = create_page(
            f"Page {n}",
            "page.html",
            "en",
            created_by=user,
            parent=parent,
            in_navigation=True,
            slug=f"page-{n}",
        )
        content = PageContent.admin_manager.get(page=page, language="en")
        text(content, f"<p>Text of page {n} with <a href='https://example.com/{n}'>a link</a></p>")
        text(content, f"<h2>Second plugin {n}</h2>")
        if n % 3 == 0:
            german = create_page_content("de", f"Seite {n}", page, created_by=user)
            text(german, f"<p>Deutsch {n}</p>")
            publish(german, user)
            urls.append(page.get_absolute_url("de"))
        if n != 9:  # the last one stays a draft
            publish(content, user)
            urls.append(page.get_absolute_url("en"))
        if n == 4:
            parent = page
    print(json.dumps({"urls": urls}))


main()
