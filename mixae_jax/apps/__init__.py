"""The applications built on the library: the command line and its modes.

  * `cli`: ``launch.py`` (train, eval, export, separate, serve);
  * `export`: a run's model as a release folder (``--mode=export``);
  * `separate`: users' image files (``--mode=separate``);
  * `demo` and `demo_session`: the demo page (``--mode=serve``) and what it
    does, without the page;
  * `image_io`, `drawn_digits`: reading users' pictures.

The library (training, evaluation, `Separator`) never imports these.
"""
