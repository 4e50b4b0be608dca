# ruff: noqa: DJ001, DJ008  (test models: nullable strings on purpose, never displayed)
"""Every Django field type the engines offer, shaped to be awkward for a backup tool."""

from django.contrib.postgres.fields import (
    ArrayField,
    BigIntegerRangeField,
    DateRangeField,
    DateTimeRangeField,
    DecimalRangeField,
    HStoreField,
    IntegerRangeField,
)
from django.db import models


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)


class Everything(models.Model):
    boolean = models.BooleanField(default=False)
    maybe = models.BooleanField(null=True)
    char = models.CharField(max_length=200, blank=True)
    char_null = models.CharField(max_length=200, null=True)
    text = models.TextField(blank=True)
    slug = models.SlugField(blank=True)
    email = models.EmailField(blank=True)
    url = models.URLField(blank=True)
    ip = models.GenericIPAddressField(null=True)
    integer = models.IntegerField(null=True)
    big = models.BigIntegerField(null=True)
    small = models.SmallIntegerField(null=True)
    positive = models.PositiveIntegerField(null=True)
    positive_small = models.PositiveSmallIntegerField(null=True)
    positive_big = models.PositiveBigIntegerField(null=True)
    floating = models.FloatField(null=True)
    decimal = models.DecimalField(max_digits=40, decimal_places=20, null=True)
    date = models.DateField(null=True)
    datetime = models.DateTimeField(null=True)
    time = models.TimeField(null=True)
    duration = models.DurationField(null=True)
    uuid = models.UUIDField(null=True)
    binary = models.BinaryField(null=True)
    json = models.JSONField(null=True)
    file = models.FileField(blank=True)
    image = models.ImageField(blank=True)
    file_path = models.FilePathField(path="/tmp", blank=True)
    tags = models.ManyToManyField(Tag, blank=True)


class Node(models.Model):
    """Self-referencing: a row may point at a row loaded after it."""

    name = models.CharField(max_length=50)
    parent = models.ForeignKey("self", null=True, on_delete=models.CASCADE, related_name="children")


class Author(models.Model):
    """Circular foreign keys with Book: no load order satisfies both."""

    name = models.CharField(max_length=50)
    favourite_book = models.ForeignKey("Book", null=True, on_delete=models.SET_NULL, related_name="+")


class Book(models.Model):
    title = models.CharField(max_length=100)
    author = models.ForeignKey(Author, on_delete=models.CASCADE)


class Student(models.Model):
    name = models.CharField(max_length=50)


class Course(models.Model):
    title = models.CharField(max_length=50)
    students = models.ManyToManyField(Student, through="Enrollment")


class Enrollment(models.Model):
    student = models.ForeignKey(Student, on_delete=models.CASCADE)
    course = models.ForeignKey(Course, on_delete=models.CASCADE)
    grade = models.CharField(max_length=2, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["student", "course"], name="one_enrollment")]


class Place(models.Model):
    name = models.CharField(max_length=50)


class Restaurant(Place):
    """Multi-table inheritance: one row in each of two tables."""

    serves_pizza = models.BooleanField(default=False)


class Awkward(models.Model):
    """Names that must be quoted: mixed case, spaces, reserved words."""

    select = models.CharField(max_length=20, db_column="select")
    user_name = models.CharField(max_length=20, db_column="User Name")
    camel = models.IntegerField(db_column="camelCase", db_index=True)
    order = models.ForeignKey(Tag, null=True, on_delete=models.CASCADE, db_column="Order")

    class Meta:
        db_table = "Awkward Table"


class Group(models.Model):
    name = models.CharField(max_length=20)

    class Meta:
        db_table = "group"


class EmptyThing(models.Model):
    name = models.CharField(max_length=20)


class PgOnly(models.Model):
    """PostgreSQL-only types (kept off SQLite by tests.fidelity.routers)."""

    numbers = ArrayField(models.IntegerField(), null=True)
    words = ArrayField(models.TextField(), null=True)
    grid = ArrayField(ArrayField(models.IntegerField()), null=True)
    store = HStoreField(null=True)
    ints = IntegerRangeField(null=True)
    bigs = BigIntegerRangeField(null=True)
    decimals = DecimalRangeField(null=True)
    dates = DateRangeField(null=True)
    moments = DateTimeRangeField(null=True)
