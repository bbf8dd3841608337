"""The wording of every event kind in Spanish and English (the one place to edit a sentence).

A :class:`Template` per kind per language: a title that names the event's subject, what
happened (with the kind's figures, :data:`permeability.monitoring.messages.FIGURE_KEYS`), a
plainer sentence for when a figure is missing, and what to do. :data:`WORDS` are the few words
around them (severities, link labels).

Pure: text only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal, get_args

from permeability.monitoring.events import EventKind

Language = Literal["es", "en"]
LANGUAGES: Final[tuple[Language, ...]] = get_args(Language)


@dataclass(frozen=True)
class Template:
    """One kind's wording in one language.

    ``title`` and the ``*_short`` sentences may only use ``{subject}``; ``what`` and ``action``
    may use any figure of the kind and are replaced by their short forms when one is missing.
    """

    title: str
    what: str
    what_short: str
    action: str
    action_short: str | None = None


_ES: Final[Mapping[EventKind, Template]] = {
    "drift": Template(
        title="Deriva en los datos del modelo {subject}",
        what="Los resultados recientes del laboratorio ({rows} filas) difieren de las "
        "{reference_rows} filas con que se entrenó el modelo {version} en: {features}.",
        what_short="Los resultados recientes del laboratorio difieren de los datos con que se "
        "entrenó el modelo {subject}.",
        action="Revise si cambiaron los materiales, los proveedores o las condiciones del "
        "ensayo. Si el cambio es real, entrene un retador con los datos recientes y compárelo "
        "con el campeón antes de promoverlo.",
    ),
    "degradation": Template(
        title="El campeón {subject} empeora con los resultados nuevos",
        what="En {tests} ensayos nuevos ({rows} filas) su {metric} es {recent}, frente a "
        "{trained} en el entrenamiento ({change}).",
        what_short="El campeón {subject} rinde peor con los resultados nuevos del laboratorio "
        "que en su entrenamiento.",
        action="Busque en los resultados recientes un material nuevo o un cambio en el "
        "laboratorio; entrene un retador con los datos recientes y compárelo con el campeón.",
    ),
    "coverage": Template(
        title="Cobertura de los intervalos de {subject} fuera de su banda",
        what="El {coverage} de {tests} ensayos nuevos ({rows} filas) cayó dentro de su "
        "intervalo, para un nivel del {level} (banda aceptada {band_low} a {band_high}).",
        what_short="La cobertura de los intervalos del modelo {subject} salió de su banda.",
        action="Con poca cobertura los intervalos subestiman el riesgo de salir de "
        "especificación; con demasiada son tan anchos que no ayudan. Reentrene para "
        "recalibrarlos con los datos recientes y, mientras tanto, confirme en el laboratorio "
        "los casos cercanos al límite.",
    ),
    "new_structure": Template(
        title="Estructura nueva: {subject}",
        what="{rows} filas de resultados nombran estructuras que el modelo {version} no vio "
        "nunca: {structures}.",
        what_short="Llegaron resultados de estructuras que el modelo no vio nunca: {subject}.",
        action="Sus valores guía solo se apoyan en estructuras parecidas. Revise la ortografía "
        "(un alias en acquisition.structure_aliases) o reentrene cuando haya resultados "
        "suficientes.",
    ),
    "job_failed": Template(
        title="Falló la tarea programada {subject}",
        what="La tarea {job} ({kind}) falló: {error}",
        what_short="La tarea programada {subject} falló.",
        action="Lea logs/schedule.log para los detalles, corrija la causa y vuelva a lanzarla "
        "con `permeability schedule --once`.",
    ),
    "promoted": Template(
        title="Nuevo campeón: {subject}",
        what="La versión {version} reemplaza a {previous} como campeón: {reason}.",
        what_short="La versión {subject} es el nuevo campeón.",
        action="Nada que hacer si era lo esperado: la página del laboratorio ya da los valores "
        "guía de esta versión. Para volver atrás: `permeability promote {previous}`.",
        action_short="Nada que hacer si era lo esperado: la página del laboratorio ya da los "
        "valores guía de esta versión.",
    ),
    "reference_out_of_control": Template(
        title="Película de referencia {subject} fuera de control",
        what="El resultado del {when} ({value} g/m²·día) incumple la(s) regla(s) {rules} de la "
        "carta de control (límites {lower} a {upper} g/m²·día, {points} puntos).",
        what_short="La película de referencia {subject} salió de control en la carta del equipo.",
        action="Revise el equipo antes de fiarse de los resultados nuevos (calibración, sellos "
        "de la celda, la propia película de referencia) y vuelva a medir la referencia.",
    ),
    "approval_needed": Template(
        title="El retador {subject} espera aprobación",
        what="En los mismos {tests} ensayos recientes el retador {challenger} tiene {metric} "
        "{challenger_value}, frente a {champion_value} del campeón {champion} ({improvement} "
        "mejor): {reason}.",
        what_short="El retador {subject} supera al campeón y espera aprobación.",
        action="Revise la comparación en la ejecución de MLflow; para aprobarlo: "
        "`permeability promote {challenger}`.",
        action_short="Revise la comparación en la ejecución de MLflow y promueva el retador si "
        "la aprueba.",
    ),
    "test": Template(
        title="Mensaje de prueba de permeability al canal {subject}",
        what="Prueba enviada al canal {channel}: si la lee, las notificaciones le llegan.",
        what_short="Prueba del canal {subject}: si la lee, las notificaciones le llegan.",
        action="Nada que hacer.",
    ),
}

_EN: Final[Mapping[EventKind, Template]] = {
    "drift": Template(
        title="Drift in the data of model {subject}",
        what="Recent lab results ({rows} rows) differ from the {reference_rows} rows model "
        "{version} was trained on, in: {features}.",
        what_short="Recent lab results differ from the data model {subject} was trained on.",
        action="Check whether materials, suppliers or test conditions changed. If the change "
        "is real, train a challenger on the recent data and compare it with the champion "
        "before promoting it.",
    ),
    "degradation": Template(
        title="Champion {subject} is getting worse on new lab results",
        what="On {tests} new tests ({rows} rows) its {metric} is {recent}, against {trained} at "
        "training ({change}).",
        what_short="Champion {subject} does worse on new lab results than at its training.",
        action="Look in the recent results for a new material or a change in the lab; train a "
        "challenger on the recent data and compare it with the champion.",
    ),
    "coverage": Template(
        title="Interval coverage of {subject} out of its band",
        what="{coverage} of {tests} new tests ({rows} rows) fell inside their interval, for a "
        "{level} level (accepted band {band_low} to {band_high}).",
        what_short="The interval coverage of model {subject} left its band.",
        action="Too little coverage understates the risk of missing a spec; too much makes the "
        "intervals too wide to help. Retrain to recalibrate them on recent data and meanwhile "
        "confirm borderline cases in the lab.",
    ),
    "new_structure": Template(
        title="New structure: {subject}",
        what="{rows} rows of lab results name structures model {version} never saw: {structures}.",
        what_short="Lab results arrived for structures the model never saw: {subject}.",
        action="Their guide values rest on similar structures only. Check the spelling (an "
        "alias in acquisition.structure_aliases) or retrain once there are enough results.",
    ),
    "job_failed": Template(
        title="Scheduled job {subject} failed",
        what="Job {job} ({kind}) failed: {error}",
        what_short="Scheduled job {subject} failed.",
        action="Read logs/schedule.log for the details, fix the cause and run it again with "
        "`permeability schedule --once`.",
    ),
    "promoted": Template(
        title="New champion: {subject}",
        what="Version {version} replaces {previous} as the champion: {reason}.",
        what_short="Version {subject} is the new champion.",
        action="Nothing to do if this was expected: the lab page now gives this version's "
        "guide values. To go back: `permeability promote {previous}`.",
        action_short="Nothing to do if this was expected: the lab page now gives this "
        "version's guide values.",
    ),
    "reference_out_of_control": Template(
        title="Reference film {subject} out of control",
        what="The result of {when} ({value} g/m²·day) breaks rule(s) {rules} of the control "
        "chart (limits {lower} to {upper} g/m²·day, {points} points).",
        what_short="Reference film {subject} went out of control on the instrument's chart.",
        action="Check the instrument before trusting new results (calibration, cell seals, the "
        "reference film itself) and measure the reference again.",
    ),
    "approval_needed": Template(
        title="Challenger {subject} awaits approval",
        what="On the same {tests} recent tests challenger {challenger} has {metric} "
        "{challenger_value}, against {champion_value} for champion {champion} ({improvement} "
        "better): {reason}.",
        what_short="Challenger {subject} beats the champion and awaits approval.",
        action="Review the comparison in the MLflow run; to approve it: "
        "`permeability promote {challenger}`.",
        action_short="Review the comparison in the MLflow run and promote the challenger if "
        "you approve.",
    ),
    "test": Template(
        title="Test message from permeability to channel {subject}",
        what="A test sent to channel {channel}: if you read it, notifications reach you.",
        what_short="A test of channel {subject}: if you read it, notifications reach you.",
        action="Nothing to do.",
    ),
}

#: The wording of every kind in every language.
TEMPLATES: Final[Mapping[Language, Mapping[EventKind, Template]]] = {"es": _ES, "en": _EN}

WORDS: Final[Mapping[Language, Mapping[str, str]]] = {
    "es": {
        "info": "Información",
        "warning": "Aviso",
        "critical": "Crítico",
        "what_to_do": "Qué hacer",
        "run": "Ejecución en MLflow",
        "page": "Página del laboratorio",
        "run_id": "Ejecución",
        "sent_by": "Enviado por permeability",
    },
    "en": {
        "info": "Info",
        "warning": "Warning",
        "critical": "Critical",
        "what_to_do": "What to do",
        "run": "MLflow run",
        "page": "Lab page",
        "run_id": "Run",
        "sent_by": "Sent by permeability",
    },
}
