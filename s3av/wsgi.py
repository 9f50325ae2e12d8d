import os

from s3av.startup import wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "s3av.settings")
# A configuration error exits with one line and status 2; the Procfile runs gunicorn with --preload so
# that happens in gunicorn's master, which then stops, instead of in workers it would start again.
application = wsgi_application()
