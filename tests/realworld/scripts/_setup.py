"""Imported first by every script here: the project (the working directory) on sys.path, Django set up."""

import os
import sys

sys.path.insert(0, os.getcwd())

import django

django.setup()
