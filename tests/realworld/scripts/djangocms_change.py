"""Change a restored django CMS site, so the next restore has work to undo."""

import json

import _setup  # noqa: F401
from cms.api import create_page
from cms.models import PageContent
from django.contrib.auth.models import User

user = User.objects.get(username="admin")
create_page("Added after the backup", "page.html", "en", created_by=user)
PageContent.admin_manager.filter(title="Page 2").update(title="Changed after the backup")
print(json.dumps({"changed": True}))
