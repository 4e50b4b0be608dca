"""After a restore: new pages and plugins get keys of their own (sequences continue)."""

import json

import _setup  # noqa: F401
from cms.api import add_plugin, create_page
from cms.models import PageContent
from django.contrib.auth.models import User

user = User.objects.create_user("after")
page = create_page("After the restore", "page.html", "en", created_by=user)
content = PageContent.admin_manager.get(page=page, language="en")
plugin = add_plugin(content.rescan_placeholders()["content"], "TextPlugin", "en", body="<p>new</p>")
print(
    json.dumps(
        {"auth.User": user.pk, "cms.Page": page.pk, "cms.PageContent": content.pk, "cms.CMSPlugin": plugin.pk}
    )
)
