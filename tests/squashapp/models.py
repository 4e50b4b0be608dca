from django.db import models


class Widget(models.Model):
    name = models.CharField(max_length=50)
    size = models.IntegerField(default=0)
    # Added by migrations_squashed/0004 only: the tests read this table with SQL, not the ORM.
    colour = models.CharField(max_length=20, default="")

    def __str__(self) -> str:
        return self.name
