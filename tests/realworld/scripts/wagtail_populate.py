"""Fill a ``wagtail start`` site through Wagtail's own APIs; prints the URLs of its pages as JSON.

A page tree (home > blog index > posts, some nested), images with renditions, documents, author
snippets, StreamField bodies referring to images and documents, gallery images (ParentalKey),
tags, revisions and publishing, a redirect, a user and a group; then the search index.
"""

import datetime
import io
import json

import _setup  # noqa: F401
from blog.models import Author, BlogIndexPage, BlogPage, BlogPageGalleryImage
from django.contrib.auth.models import Group, User
from django.core.files.base import ContentFile
from django.core.files.images import ImageFile
from django.core.management import call_command
from PIL import Image as PILImage
from wagtail.contrib.redirects.models import Redirect
from wagtail.documents.models import Document
from wagtail.images.models import Image
from wagtail.models import Collection, Site
from wagtail.rich_text import RichText


def png(colour, size=(64, 48)):
    buffer = io.BytesIO()
    PILImage.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def main():
    owner = User.objects.create_superuser("editor", "editor@example.com", "not-a-real-password")
    Group.objects.create(name="Reviewers")
    photos = Collection.get_first_root_node().add_child(name="Photos")
    images = []
    for number, colour in enumerate(["red", "green", "blue", "orange", "purple", "teal"]):
        image = Image(title=f"Photo {number}", collection=photos, uploaded_by_user=owner)
        image.file = ImageFile(io.BytesIO(png(colour, (64 + number, 48 + number))), name=f"photo{number}.png")
        image.save()
        image.tags.add("photo", colour)
        for spec in ("fill-320x240", "fill-160x100", "fill-40x40", "max-165x165"):
            image.get_rendition(spec)
        images.append(image)
    documents = [
        Document.objects.create(
            title=f"Leaflet {n}", file=ContentFile(f"leaflet {n}\n".encode(), name=f"leaflet{n}.txt")
        )
        for n in range(3)
    ]
    authors = [
        Author.objects.create(name=name, author_image=images[n])
        for n, name in enumerate(["Ada", "Grace", "Émile"])
    ]

    home = Site.objects.get(is_default_site=True).root_page
    blog = home.add_child(
        instance=BlogIndexPage(title="Blog", slug="blog", intro="<p>News of the <b>site</b></p>")
    )
    blog.save_revision(user=owner).publish()
    urls = ["/", "/blog/"]
    parent = blog
    for n in range(14):
        post = BlogPage(
            title=f"Post {n}: «ünïcode» & quotes \"'",
            slug=f"post-{n}",
            date=datetime.date(2024, 1, 1) + datetime.timedelta(days=n),
            intro=f"Intro of post {n}",
            body=[
                ("heading", f"Heading {n}"),
                ("paragraph", RichText(f'<p>Text {n} with <a href="https://example.com/{n}">a link</a></p>')),
                ("image", images[n % len(images)]),
                ("document", documents[n % len(documents)]),
                ("quote", {"text": f"Quote {n}\nover lines", "author": authors[n % 3].name}),
                ("links", [f"https://example.com/{n}/a", f"https://example.com/{n}/b"]),
            ],
        )
        post.gallery_images = [
            BlogPageGalleryImage(image=images[(n + k) % len(images)], caption=f"Caption {n}.{k}")
            for k in range(2)
        ]
        post.authors = [authors[n % 3], authors[(n + 1) % 3]]
        parent.add_child(instance=post)
        post.tags.add(f"tag{n % 4}", "news")
        post.save_revision(user=owner).publish()
        if n % 5 == 4:
            post.intro = f"Edited intro of post {n}"
            post.save_revision(user=owner).publish()
        urls.append(post.url)
        if n == 6:
            parent = post  # the rest nest one level deeper: a real tree, not a list
    draft = blog.add_child(
        instance=BlogPage(title="Draft", slug="draft", date=datetime.date(2024, 3, 1), intro="x", live=False)
    )
    draft.save_revision(user=owner)
    Redirect.objects.create(old_path="/old-blog", redirect_page=blog)
    call_command("update_index", verbosity=0)
    print(json.dumps({"urls": [*urls, "/old-blog", "/search/?query=post"]}))


main()
