"""The HTTP front end: a Flask app (:func:`mr.web.app.create_app`) that gunicorn serves with the
gevent worker class (:mod:`mr.web.wsgi`, :mod:`mr.web.gunicorn_dev_conf`,
:mod:`mr.web.gunicorn_prod_conf`). It accepts requests and answers with their outcome; it never
runs handler code."""
