"""Change a restored Wagtail site the way its editors would, so the next restore has work to undo."""

import json

import _setup  # noqa: F401
from blog.models import Author, BlogPage
from django.contrib.auth.models import User

page = BlogPage.objects.get(slug="post-3")
page.title = "Changed after the backup"
page.save_revision(user=User.objects.get(username="editor")).publish()
BlogPage.objects.get(slug="post-13").delete()
Author.objects.create(name="Added after the backup")
print(json.dumps({"changed": True}))
