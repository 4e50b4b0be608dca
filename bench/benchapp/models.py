# ruff: noqa: DJ008  (benchmark models, never displayed)
from django.db import models


class Family(models.Model):
    name = models.CharField(max_length=100)
    email = models.EmailField(unique=True)
    created_at = models.DateTimeField(db_index=True)
    notes = models.TextField(blank=True)


class Child(models.Model):
    family = models.ForeignKey(Family, on_delete=models.CASCADE)
    first_name = models.CharField(max_length=50)
    birth_date = models.DateField(db_index=True)
    details = models.JSONField(default=dict)


class Attendance(models.Model):
    child = models.ForeignKey(Child, on_delete=models.CASCADE)
    day = models.DateField()
    checked_in = models.DateTimeField()
    checked_out = models.DateTimeField(null=True)
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        indexes = [models.Index(fields=["child", "day"])]


class Payment(models.Model):
    family = models.ForeignKey(Family, on_delete=models.CASCADE)
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    paid_at = models.DateTimeField(db_index=True)
    reference = models.UUIDField(unique=True)
