"""HTTP services: training (``permeability serve training``, port 8000) and inference
(``permeability serve inference``, port 8001).

Each service is built by an app factory (``create_training_app(settings)``,
``create_inference_app(settings)``): nothing is read, opened or imported from MLflow until the
app starts (its lifespan).
"""
