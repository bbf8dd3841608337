"""HTTP services: the training service now (``permeability serve training``), inference later.

Each service is built by an app factory (``create_training_app(settings)``): nothing is read,
opened or imported from MLflow until the app starts (its lifespan).
"""
