from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

requires = [
    "alembic>=1.13",
    "argon2-cffi>=23.1",
    "email-validator>=2.1",
    "itsdangerous>=2.1",
    # Multipart forms (uploads): 0.18 ms against WebOb's cgi at 1.6 ms for twine's form (myapp/web/forms.py).
    "multipart>=2.0",
    # S3 (and later GCS/Azure) file stores: faster to sign and read than boto3 (bench/store_clients.py).
    "obstore>=0.12",
    "packaging>=24",
    "Paste>=3.5",
    "plaster_pastedeploy",
    "psycopg[binary]>=3.1",
    "pyotp>=2.9",
    "pyramid>=2.0",
    "pyramid_jinja2>=2.10",
    "pyramid_mailer>=0.15.1",
    "pyramid_retry>=2.1",
    "pyramid_tm>=2.5",
    "readme_renderer[md]>=42",
    "segno>=1.6",
    # Pyramid and PasteDeploy import pkg_resources at run time; setuptools 82 removed it,
    # and from 80.9 importing it prints a UserWarning at every start of pserve and pshell
    # (before it, a DeprecationWarning, hidden by default).
    "setuptools>=68,<80.9",
    # 2.0.21: func.aggregate_strings (an upload reads its project's classifiers in its one statement).
    "SQLAlchemy>=2.0.21,<2.1",
    "tqdm>=4.66",
    "transaction>=4.0",
    # Uploads' classifiers must be known trove classifiers, as on PyPI (the list PyPI uses).
    "trove-classifiers>=2024.10.11",
    "waitress>=3.0",
    "WTForms>=3.1",
    "zope.sqlalchemy>=3.1",
    "zxcvbn>=4.4",
]

tests_require = [
    "aiosmtpd>=1.4",
    # The proxy's tests: bandersnatch mirrors this index (api-method = simple).
    "bandersnatch>=6.8",
    "bandit>=1.7",
    "build>=1.0",
    # Real clients in tests: hatchling 1.33 writes Metadata-Version 2.5; hatch publishes.
    "hatch>=1.16",
    "hatchling==1.33.0",
    "hypothesis>=6.100",
    # A real S3 server on 127.0.0.1 for the object-store tests (tests/test_object_store.py).
    "moto[server]>=5.0",
    "playwright>=1.40",
    # An HTML-only upstream (PEP 503, no upload-time) for the proxy's tests.
    "pypiserver>=2.4",
    "pytest>=8",
    # make test runs the suite on every core (per-worker databases: tests/conftest.py).
    "pytest-xdist>=3.5",
    "twine>=5",
    "uv>=0.4",
    "WebTest>=3.0",
]

dev_require = [
    # make test type-checks myapp/ first ([tool.mypy] in pyproject.toml).
    "mypy>=1.10",
    "pyramid_debugtoolbar>=4.10",
    "ruff>=0.6",
]

setup(
    name="myapp",
    version="0.1.0",
    description="A Pyramid + SQLAlchemy scaffold whose example site is a private Python package index",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    classifiers=[
        "Programming Language :: Python :: 3",
        "Framework :: Pyramid",
        "Topic :: Internet :: WWW/HTTP :: WSGI :: Application",
    ],
    python_requires=">=3.11",
    packages=find_packages(exclude=["tests", "tests.*", "bench"]),
    include_package_data=True,
    zip_safe=False,
    install_requires=requires,
    extras_require={"testing": tests_require, "dev": dev_require + tests_require},
    entry_points={
        "paste.app_factory": ["main = myapp:main"],
        "console_scripts": [
            "myapp-initdb = myapp.scripts.initdb:main",
            "myapp-import = myapp.scripts.import_json:main",
            "myapp-adduser = myapp.scripts.adduser:main",
            "myapp-invite = myapp.scripts.invite:main",
            "myapp-rerender = myapp.scripts.rerender:main",
            "myapp-worker = myapp.scripts.worker:main",
            "myapp-files = myapp.scripts.files:main",
        ],
        # pshell's runner with a short banner ([pshell] default_shell = myapp in the ini files).
        "pyramid.pshell_runner": ["myapp = myapp.pshell:python_shell"],
    },
)
