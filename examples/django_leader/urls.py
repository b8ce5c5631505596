from django.urls import path

from django_leader import views

urlpatterns = [path("leader", views.leader)]
