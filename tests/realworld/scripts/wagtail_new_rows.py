"""After a restore: new pages, images and snippets get keys of their own (sequences continue)."""

import datetime
import io
import json

import _setup  # noqa: F401
from blog.models import Author, BlogIndexPage, BlogPage
from django.core.files.images import ImageFile
from PIL import Image as PILImage
from wagtail.images.models import Image

buffer = io.BytesIO()
PILImage.new("RGB", (10, 10), "black").save(buffer, "PNG")
image = Image(title="After the restore")
image.file = ImageFile(io.BytesIO(buffer.getvalue()), name="after.png")
image.save()
author = Author.objects.create(name="After the restore")
post = BlogPage(
    title="After the restore", slug="after-the-restore", date=datetime.date(2025, 1, 1), intro="new"
)
BlogIndexPage.objects.get(slug="blog").add_child(instance=post)
revision = post.save_revision()
revision.publish()
print(
    json.dumps(
        {
            "wagtailimages.Image": image.pk,
            "blog.Author": author.pk,
            "wagtailcore.Page": post.pk,
            "wagtailcore.Revision": revision.pk,
        }
    )
)
