"""The workflow engine: drives a yadage spec and runs its steps on a backend.

It knows no Django model. It takes a spec, init parameters, a work folder, an
executor and an observer, and reports what happened through the observer.
"""
